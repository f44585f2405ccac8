"""``python -m neuralinv.cli``: the same as ``python -m neuralinv``."""

from . import main

main()
