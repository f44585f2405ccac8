"""The ``neuralinv`` command line: the only code that prints.

``app`` (:mod:`.app`: the typer app, its consoles, ``fail``) gets its commands from the modules
imported here, in the order ``--help`` lists them: :mod:`.files` (invert, generate, verify),
:mod:`.train`, :mod:`.evaluate` (evaluate, analyze), :mod:`.tools` (demo, bench). Every table
and line they show is built in :mod:`.render` from the data the library returns. ``main``
(:mod:`.signals`) is the console script: the app with SIGTERM/SIGHUP as an orderly exit.
"""

from __future__ import annotations

from .app import app
from .signals import main

# isort: off
# Each module registers its commands on app; --help lists them in this order.
from . import files  # noqa: F401  invert, generate, verify
from . import train  # noqa: F401  train
from . import evaluate  # noqa: F401  evaluate, analyze
from . import tools  # noqa: F401  demo, bench
# isort: on

__all__ = ["app", "main"]
