"""``python -m neuralinv`` (also what ``torchrun -m neuralinv`` runs)."""

from .cli import main

main()
