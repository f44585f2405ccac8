"""Training learned inverters on regions: configuration, the loop, checkpoints, DDP."""

from .config import ModelConfig, TrainConfig
from .loop import Progress, train

__all__ = ["ModelConfig", "Progress", "TrainConfig", "train"]
