"""Reading, writing and streaming matrix files; the one atomic writer every output uses.

One concept per module:

``paths``      the formats by extension (``.mx``, ``.npy``, ``.npz``, ``.csv``), input/output path checks
``atomic``     :func:`atomic_write` / :class:`AtomicFile`: an output appears complete or not at all
``together``   :func:`commit_together`: several outputs change together (a journal), signals held
``text``       the ``.mx`` and ``.csv`` text formats
``npy``        the ``.npy`` and ``.npz`` formats
``reading``    :func:`open_matrices`, :func:`read_matrices`, :func:`iter_matrices`, :func:`paired_chunks`
``writing``    :class:`MatrixWriter`, :func:`write_matrices`, :func:`matrix_pair_writer`
``streaming``  :func:`~neuralinv.files.streaming.invert_file`: invert a file of any size chunk by chunk
``datasets``   :func:`~neuralinv.files.datasets.generate` / ``verify_files``: DeepMatrixInversion datasets

This package imports only the file layer (no inversion code); ``streaming`` and ``datasets``,
which invert and certify, are imported as submodules. Malformed input raises
:class:`~neuralinv.errors.InputError` naming the file, and for text formats the line.
"""

from .atomic import AtomicFile, atomic_write, clean_directory, fsync_dir, write_bytes, write_text
from .npy import NPZ_KEY
from .paths import DEFAULT_CHUNK, FORMATS, check_input_path, check_output_path, format_of
from .reading import MatrixSource, iter_matrices, open_matrices, paired_chunks, read_matrices
from .together import commit_together
from .writing import MatrixWriter, matrix_pair_writer, write_matrices

__all__ = [
    "DEFAULT_CHUNK",
    "FORMATS",
    "NPZ_KEY",
    "AtomicFile",
    "MatrixSource",
    "MatrixWriter",
    "atomic_write",
    "check_input_path",
    "check_output_path",
    "clean_directory",
    "commit_together",
    "format_of",
    "fsync_dir",
    "iter_matrices",
    "matrix_pair_writer",
    "open_matrices",
    "paired_chunks",
    "read_matrices",
    "write_bytes",
    "write_matrices",
    "write_text",
]
