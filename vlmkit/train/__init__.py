"""Fine-tuning CLIP-style models (issue #4): :func:`finetune` with a :class:`TrainConfig`.

    from vlmkit.train import TrainConfig, finetune
    result = finetune(TrainConfig(method="m2mix", pretrained="/tmp/vlmkit-pretrained"), "runs/x")

Also ``python -m vlmkit.train --method m2mix --epochs 3 --out runs/x`` (and under torchrun).
"""

from .config import METHODS, RECIPES, Recipe, TrainConfig, recipe
from .loop import FinetuneResult, finetune, load_history, load_splits, validate

__all__ = ["METHODS", "RECIPES", "Recipe", "recipe", "FinetuneResult", "TrainConfig", "finetune", "load_history", "load_splits", "validate"]
