"""What training learns from: seeded samples of the region (training batches, calibration,
validation), the data matrices a fitted region was fitted to, and the paper's baseline."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from ..errors import InputError
from ..kernels.lapack import inverse_ex
from .config import TrainConfig

#: Calibration and validation samples use seeds far from the training streams'.
CALIBRATION_SEED = 1_000_003
VALIDATION_SEED = 2_000_003
CALIBRATION_SIZE = 4096


def member_seed(config: TrainConfig, member: int, rank: int) -> int:
    return config.seed * 1_000_000 + member * 1_000 + rank


def generator(seed: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def fixed_sample(config: TrainConfig, seed: int, size: int, device) -> tuple[Tensor, Tensor]:
    """A reproducible float64 sample of the region and its float64 inverses."""
    g = generator(config.seed * 7919 + seed, torch.device("cpu"))
    A = config.region.sample(size, generator=g, dtype=torch.float64)
    return A.to(device), inverse_ex(A)[0].to(device)


def validation_sample(config: TrainConfig, device=None) -> tuple[Tensor, Tensor]:
    return fixed_sample(config, VALIDATION_SEED, config.val_size, device or "cpu")


def batch(config: TrainConfig, data: Tensor | None, gen: torch.Generator, device) -> Tensor:
    """A float64 training batch: fresh region samples, with ``data_share`` of it drawn (with
    replacement) from the data matrices when the config has data."""
    take = 0 if data is None else round(config.batch_size * config.data_share)
    A = config.region.sample(config.batch_size - take, generator=gen, device=device, dtype=torch.float64)
    if take:
        idx = torch.randint(data.shape[0], (take,), generator=gen, device=device)
        A = torch.cat([A, data[idx]])
    return A


def linear_approximation_mae(config: TrainConfig, A: Tensor, X_true: Tensor) -> float | None:
    """MAE of ``C - C D C`` around a Ball's center (the paper's baseline; for Balls around each
    matrix's nearest center); None for a Box."""
    region = config.region
    if hasattr(region, "balls"):
        which = region.nearest(A.cpu()).to(A.device)
        centers = region.centers.to(A)
        C = torch.linalg.inv(centers)[which]
        D = A - centers[which]
        return float((C - C @ D @ C - X_true).abs().mean())
    center = getattr(region, "center", None)
    if center is None:
        return None
    C = torch.linalg.inv(center).to(A)
    D = A - center.to(A)
    return float((C - C @ D @ C - X_true).abs().mean())


#: Data matrices kept for mixing into training batches (a uniform sample of the in-region ones).
MAX_DATA_MATRICES = 200_000


def data_matrices(config: TrainConfig, device=None) -> Tensor | None:
    """The matrices of ``config.data`` that the learned method would hand to the network, as
    the network sees them (scaled into the region as routing scales them), float64 on
    ``device``; at most :data:`MAX_DATA_MATRICES` (a seeded uniform sample). None without data.
    InputError when a file's SHA-256 differs from ``config.data_sha256`` (the data changed
    since the region was fitted) or no data matrix lies in the region."""
    if not config.data:
        return None
    from ..regions.fitting import read_fit_data, sha256_file

    if config.data_sha256 is not None:
        for path, digest in zip(config.data, config.data_sha256):
            got = sha256_file(path) if Path(path).is_file() else None
            if got != digest:
                raise InputError(
                    f"{path}: {'missing' if got is None else 'changed'} since the region was fitted "
                    f"(SHA-256 {digest[:12]}..., now {got[:12] + '...' if got else 'none'}); "
                    "fit and train again (--no-resume)"
                )
    data = read_fit_data(list(config.data), limit=MAX_DATA_MATRICES, seed=config.seed)
    A = data.sample
    inside, s = config.region.scaled_into(A, scale=True)
    kept = (A * s[:, None, None])[inside]
    if kept.shape[0] == 0:
        raise InputError(f"{', '.join(config.data)}: no matrix lies in the model's region (even scaled)")
    return kept.to(device or "cpu")


__all__ = ["MAX_DATA_MATRICES", "batch", "data_matrices", "fixed_sample", "linear_approximation_mae",
           "validation_sample"]
