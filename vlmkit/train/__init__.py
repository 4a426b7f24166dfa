"""Fine-tuning CLIP-style models (issue #4): :func:`finetune` with a :class:`TrainConfig`.

    from vlmkit.train import TrainConfig, finetune
    result = finetune(TrainConfig(method="m2mix", pretrained="/tmp/vlmkit-pretrained"), "runs/x")

Each method (``contrastive``, ``sigmoid``, the m²-Mix family, ``vacsr-joint``) is a
:class:`~vlmkit.train.methods.Method` of :data:`METHOD_REGISTRY` (``get_method(name)``): its loss,
own parameters, optimiser groups, checkpoint files, noise setting and ``score``.

Also ``python -m vlmkit.train --method m2mix --epochs 3 --out runs/x`` (and under torchrun).
"""

from .config import METHODS, RECIPES, Recipe, TrainConfig, recipe
from .loop import FinetuneResult, finetune, load_history, load_splits, validate
from .methods import METHOD_REGISTRY, Method, get_method

__all__ = ["METHODS", "METHOD_REGISTRY", "Method", "RECIPES", "Recipe", "recipe", "FinetuneResult", "TrainConfig",
           "finetune", "get_method", "load_history", "load_splits", "validate"]
