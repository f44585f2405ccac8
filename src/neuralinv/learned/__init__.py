"""The learned stack: a network's guess of the inverse on a region, and everything around it.

* :mod:`.inverse`     -- :class:`LearnedInverse`, the trained ensemble, its model directory and
  ``builtin:NAME`` models (``pretrained/``);
* :mod:`.config`      -- :class:`TrainConfig` / :class:`ModelConfig` (TOML), and
  ``TrainConfig.skeleton()``, the network a config describes;
* :mod:`.models`      -- the architectures (``MODELS``: mlp, dense_resnet, correction);
* :mod:`.loop`        -- :func:`train`, the training loop; :mod:`.checkpoint` its atomic files;
  :mod:`.distributed` torchrun / DDP;
* :mod:`.demo`        -- the data of ``neuralinv demo``'s learned part.

The certified method that uses a model (guess, Newton-Schulz, exact fallback) is
:class:`neuralinv.methods.learned.Learned`: this package never imports ``neuralinv.methods``.
"""

from .config import ModelConfig, TrainConfig
from .inverse import BUILTIN_PREFIX, LearnedInverse, builtin_models
from .loop import Progress, train
from .models import MODELS, build_model

__all__ = ["BUILTIN_PREFIX", "MODELS", "LearnedInverse", "ModelConfig", "Progress", "TrainConfig",
           "build_model", "builtin_models", "train"]
