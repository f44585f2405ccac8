"""Regions of matrix space a learned inverter is trained on, and that certificates speak about.

A network can only approximate the inverse on a region that stays away from the singular set
(the inverse is unbounded near it). A region knows how to

* ``sample(batch, generator=...)`` matrices on a device, deterministically for a seeded generator;
* say whether matrices belong to it (``contains``);
* describe itself as a plain, TOML-serialisable dict (``describe`` / ``region_from_description``).

Three regions:

* :class:`Box` -- i.i.d. uniform entries in ``[low, high)``, optionally rejecting matrices with
  ``|det| <= min_abs_det`` or ``sigma_min <= min_sigma``. The DeepMatrixInversion training set
  is ``Box(3, -1, 1, min_abs_det=0.1)``.
* :class:`Ball` -- the paper's region ``{A0 + D : |D_ij| <= r}``. Entrywise ``|D_ij| <= r``
  gives ``||D||_2 <= ||D||_F <= n r``, so ``n r < sigma_min(A0)`` proves that every matrix of
  the ball is invertible (Weyl: ``sigma_min(A0 + D) >= sigma_min(A0) - ||D||_2 > 0``).
  :meth:`Ball.check` enforces exactly that.
* :class:`Balls` -- a union of such balls, each one checked the same way. ``Ball.fit(A)`` and
  ``Balls.fit(A)`` fit them to a user's matrices (:mod:`neuralinv.regions.fitting`).

Files: ``base.py`` (what they share, including :meth:`Region.scaled_into`, the learned method's
routing test), ``box.py``, ``balls.py`` (Ball and Balls), ``description.py``, ``fitting.py``.
"""

from .balls import Ball, Balls, fit_balls, fit_files
from .base import DEFAULT_RADIUS_DIGITS, Region, ScaledInto, distance_to_singular
from .box import Box
from .description import region_from_description
from .fitting import FitReport, coverage_of, read_fit_data, sha256_file

__all__ = ["DEFAULT_RADIUS_DIGITS", "Ball", "Balls", "Box", "FitReport", "Region", "ScaledInto",
           "coverage_of", "distance_to_singular", "fit_balls", "fit_files", "read_fit_data",
           "region_from_description", "sha256_file"]
