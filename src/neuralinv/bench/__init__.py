"""Throughput, accuracy and memory of every method next to torch.linalg.inv and numpy.linalg.inv.

Everything is measured in one process on the same inputs: each size gets one batch of
well-conditioned matrices, every approach is warmed up once (not timed), then timed for
``repeats`` rounds. Within a round the approaches run back to back in a rotating order, so the
speed-up of an approach over torch.linalg.inv is the median of per-round ratios: on a shared
machine both sides of a ratio then see the same load. GPU timings synchronise the device.

Approaches:
  ``torch.linalg.inv``, ``numpy.linalg.inv`` (references, uncertified);
  ``<method>`` (the full certified path, ``Method.invert``: validation, certificate, labels);
  ``<method>:compile`` (the same with ``compile=True``, for methods that have that option,
  i.e. ``learned``; the compilation is done before the warm-up and reported as ``setup_s``,
  never timed);
  ``<method>:alone`` (the method's kernel only, ``Method.kernel``, no certificate, except for
  a kernel that computes it as part of its answer).
The methods are those of the registry (``neuralinv.methods.METHODS``); a method is left out of
the sizes it does not take (``Method.supports``).

Modules: :mod:`.config` (what to benchmark: :class:`BenchConfig`, method specs, the inputs),
:mod:`.runner` (:func:`run`, :class:`BenchResult`), :mod:`.measure` (timing, memory, the
machine), :mod:`.output` (JSON and the plot). The CLI renders the table (``neuralinv.cli.render``).
"""

from .config import (
    DEFAULT_METHODS,
    DEFAULT_SIZES,
    DTYPES,
    REFERENCES,
    SKIPPED_EVERYWHERE,
    BenchConfig,
    build,
    method_spec,
    parse_names,
    parse_sizes,
    well_conditioned,
)
from .measure import machine_info
from .output import plot, write_json
from .runner import BenchResult, Row, approaches_for, run

__all__ = [
    "DEFAULT_METHODS", "DEFAULT_SIZES", "DTYPES", "REFERENCES", "SKIPPED_EVERYWHERE",
    "BenchConfig", "BenchResult", "Row", "approaches_for", "build", "machine_info",
    "method_spec", "parse_names", "parse_sizes", "plot", "run", "well_conditioned", "write_json",
]
