"""Learning-rate schedules, as ``torch.optim.lr_scheduler`` objects (one owner for vlmkit).

:func:`warmup_cosine` is the CLIP / m²-Mix schedule: a linear warm-up over ``warmup_steps``
steps, then a cosine decay to 0 at ``total_steps``. At optimiser step ``s`` (0-based) every
parameter group runs at ``initial_lr · f(s)`` with

    f(s) = (s + 1) / warmup                                   for s < warmup,
    f(s) = ½ · (1 + cos(π · min(1, (s − warmup) / max(1, total − warmup))))   otherwise,

the m²-Mix authors' ``cosine_lr`` (``utils.py``) except that the decay stays at 0 past
``total`` instead of rising again. Use it as any scheduler: call ``scheduler.step()`` after
each ``optimizer.step()``; its ``state_dict()`` holds the step for an exact resume.
"""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR

from .utils import VlmkitError


def warmup_cosine_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """``f(step)`` of the module docstring: the multiplier of each group's initial lr."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int,
                  last_step: int = -1) -> LambdaLR:
    """A :class:`~torch.optim.lr_scheduler.LambdaLR` with linear warm-up then cosine decay to 0.

    Each group's lr at construction is its peak (``initial_lr``); the optimiser's lrs are set
    for step 0 at once. ``last_step`` > −1 rebuilds the schedule mid-run (the groups then need
    ``initial_lr``, as after loading an optimiser state); prefer ``load_state_dict``.
    """
    for name, v in (("warmup_steps", warmup_steps), ("total_steps", total_steps)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise VlmkitError(f"{name}={v!r}: expected an integer ≥ 0")
    if warmup_steps > total_steps:
        raise VlmkitError(f"warmup_steps={warmup_steps} exceeds total_steps={total_steps}")
    return LambdaLR(optimizer, lambda s: warmup_cosine_factor(s, warmup_steps, total_steps), last_epoch=last_step)


def step_decay(optimizer: torch.optim.Optimizer, at: int, factor: float = 0.1, last_step: int = -1) -> LambdaLR:
    """A :class:`~torch.optim.lr_scheduler.LambdaLR` that keeps each group's ``initial_lr`` and
    multiplies it by ``factor`` from step ``at`` on (the VACSR paper's ×0.1 at epoch 15 of 25;
    the caller decides whether a "step" is an optimiser step or an epoch)."""
    if isinstance(at, bool) or not isinstance(at, int) or at < 0:
        raise VlmkitError(f"at={at!r}: expected an integer ≥ 0")
    return LambdaLR(optimizer, lambda s: factor if s >= at else 1.0, last_epoch=last_step)


def decays(name: str, param: torch.Tensor) -> bool:
    """Whether a parameter gets weight decay: weight matrices only (``ndim ≥ 2``), never token or
    positional embeddings; biases, LayerNorm gains and the logit scale get none (CLIP's and
    open_clip's convention; the one rule of pretraining and fine-tuning)."""
    return param.ndim >= 2 and "embedding" not in name
