"""The primer's toy experiments (notebook 00, all tested in ``tests/test_analysis.py``): why
the modality gap exists before and after contrastive training, shown without real data.

* :func:`random_init_features` — features of a dataset under a *randomly initialised* model:
  each encoder maps its inputs into its own narrow cone, a gap before any training.
* :func:`two_cones` — free unit embeddings for a toy: images around one direction, texts
  around another.
* :func:`temperature_gap` / :func:`free_embeddings` — free embeddings trained with the
  symmetric contrastive loss (:func:`vlmkit.losses.contrastive_loss`) at several temperatures:
  at low τ the gap survives training, at high τ it closes.

The measurements they are read with (:func:`vlmkit.analysis.cone_stats`,
:func:`vlmkit.analysis.embedding_shift`, :func:`vlmkit.analysis.retrieval_r1`) serve real
features too and live in :mod:`vlmkit.analysis`.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .analysis import retrieval_r1
from .losses import contrastive_loss as info_nce
from .utils import VlmkitError


def _unit(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1)


def random_init_features(dataset: Any, model: str = "vlmkit-tiny", seed: int = 0, device: str = "cpu"):
    """Features of ``dataset`` under a *randomly initialised* model (seeded): the cone effect."""
    from .features import encode_dataset
    from .models.factory import load_model
    from .utils import seed_everything

    seed_everything(seed)
    loaded = load_model(model, pretrained=None, device=device)
    return encode_dataset(loaded, dataset)


def two_cones(n: int = 200, d: int = 32, spread: float = 0.6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Free unit embeddings for a toy: images around one random direction, texts around another (two cones)."""
    g = torch.Generator().manual_seed(seed)
    ci, ct = (_unit(torch.randn(d, generator=g, dtype=torch.float64)),
              _unit(torch.randn(d, generator=g, dtype=torch.float64)))
    x = _unit(ci + spread * torch.randn(n, d, generator=g, dtype=torch.float64) / np.sqrt(d) * 3)
    y = _unit(ct + spread * torch.randn(n, d, generator=g, dtype=torch.float64) / np.sqrt(d) * 3)
    return x, y


def _train_free(x0: torch.Tensor, y0: torch.Tensor, tau: float, steps: int, lr: float, every: int = 10):
    """Adam on free row-paired embeddings with the symmetric InfoNCE at τ; yields
    ``(step, unit x, unit y, loss, logits)`` at step 0, every ``every`` steps and at the end."""
    if not tau > 0:
        raise VlmkitError(f"temperature must be > 0, got {tau}")
    x = x0.clone().float().requires_grad_(True)
    y = y0.clone().float().requires_grad_(True)
    opt = torch.optim.Adam([x, y], lr=lr)
    for step in range(steps + 1):
        xu, yu = _unit(x), _unit(y)
        logits = xu @ yu.T / tau
        loss = info_nce(logits=logits)
        if step % every == 0 or step == steps:
            yield step, xu.detach(), yu.detach(), float(loss.detach()), logits.detach()
        if step < steps:
            opt.zero_grad()
            loss.backward()
            opt.step()


def temperature_gap(temperatures: Sequence[float] = (0.01, 0.05, 0.1, 1.0), n: int = 200, d: int = 32, steps: int = 200,
                    lr: float = 0.05, seed: int = 0) -> pd.DataFrame:
    """Train free embeddings (two cones, row-paired) with the symmetric contrastive loss at each τ.

    Rows: ``temperature, step, gap, loss, r1`` every 10 steps (step 0 = the initial cones).
    Each τ starts from the same cones, so the curves differ only by τ.
    """
    x0, y0 = two_cones(n, d, seed=seed)
    rows = []
    for tau in temperatures:
        for step, xu, yu, loss, logits in _train_free(x0, y0, tau, steps, lr):
            rows.append({"temperature": float(tau), "step": step, "gap": float((xu.mean(0) - yu.mean(0)).norm()),
                         "loss": loss, "r1": retrieval_r1(xu, yu, np.arange(n))[0]})
    return pd.DataFrame(rows)


def free_embeddings(temperature: float = 0.01, n: int = 200, d: int = 32, steps: int = 200, lr: float = 0.05,
                    seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The unit image/text embeddings :func:`temperature_gap` ends with at one τ (row-paired:
    caption i belongs to image i) — a gap kept by training, for the primer's shift experiment."""
    *_, (step, xu, yu, loss, logits) = _train_free(*two_cones(n, d, seed=seed), temperature, steps, lr,
                                                   every=max(1, steps))
    return xu.double(), yu.double()
