"""Embedding geometry: uniformity, alignment, relative alignment, modality gap.

All functions L2-normalise features first (``normalize=True``) and work on torch tensors
(CPU/CUDA) or NumPy arrays; pairwise quantities are computed in row blocks, never as an
n × n × d tensor.

* Uniformity (Wang & Isola 2020): log mean_{i<j} exp(−t‖z_i − z_j‖²), t = 2, over the
  *union* of image and text embeddings (the m²-Mix authors' code duplicates the image set
  instead — a bug we do not reproduce).  Lower = more uniform.
* Alignment (Wang & Isola): mean over positive pairs of ‖x − y‖^α, α = 2.
* Relative alignment (m²-Mix paper, Eq. 2): mean over positive pairs of the positive squared
  distance minus the squared distance to the anchor's nearest negative. ``anchor="text"``
  (default) is the m²-Mix authors' code (``rel_lalign_torch(text, image)``): for each caption
  c of image i, ‖y_c − x_i‖² − min_{j ≠ i} ‖y_c − x_j‖² (nearest *other image*), mean over
  captions. ``anchor="image"``: for each pair (image i, caption c), ‖x_i − y_c‖² −
  min_{j : caption j not of image i} ‖x_i − y_j‖² (nearest caption of another image), mean
  over pairs. With one caption per image (``caption_image = arange``) they are
  mean_i(‖t_i − v_i‖² − min_{j≠i}‖t_i − v_j‖²) and mean_i(‖v_i − t_i‖² − min_{j≠i}‖v_i − t_j‖²):
  the same positives, different nearest negatives, so different numbers on the same
  features (the text anchor compares a caption with other images).
* Modality gap (Liang et al. 2022): Δ = mean(normalised images) − mean(normalised texts);
  the gap is ‖Δ‖ and the gap direction Δ / ‖Δ‖.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from ..utils import VlmkitError, as_tensor
from .scores import auto_chunk, check_finite, l2_normalize


def _feats(x: Any, name: str, normalize: bool) -> torch.Tensor:
    t = as_tensor(x, name)
    if t.ndim != 2:
        raise VlmkitError(f"{name}: expected a 2-D (n, d) feature matrix, got shape {tuple(t.shape)}")
    if len(t) == 0:
        raise VlmkitError(f"{name}: no rows")
    t = t.to(torch.float64 if t.dtype == torch.float64 else torch.float32)
    check_finite(t, name)
    return l2_normalize(t) if normalize else t


def _pair_feats(img: Any, txt: Any, normalize: bool) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = _feats(img, "img_feats", normalize), _feats(txt, "txt_feats", normalize)
    if x.shape[1] != y.shape[1]:
        raise VlmkitError(f"img_feats have d={x.shape[1]} but txt_feats d={y.shape[1]}")
    return x, y.to(x.device, x.dtype)


def _sqdist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances (a_rows × b_rows), clamped at 0 against rounding."""
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return d.clamp_min(0.0)


def uniformity(img_feats: Any, txt_feats: Any | None = None, *, t: float = 2.0, normalize: bool = True,
               chunk_size: int | None = None) -> float:
    """log mean_{i<j} exp(−t‖z_i − z_j‖²) over the union z of image and text embeddings."""
    z = _feats(img_feats, "img_feats", normalize)
    if txt_feats is not None:
        y = _feats(txt_feats, "txt_feats", normalize)
        if y.shape[1] != z.shape[1]:
            raise VlmkitError(f"img_feats have d={z.shape[1]} but txt_feats d={y.shape[1]}")
        z = torch.cat([z, y.to(z.device, z.dtype)])
    n = len(z)
    if n < 2:
        raise VlmkitError("uniformity needs at least 2 embeddings")
    step = auto_chunk(n, chunk_size)
    lse = []
    for a in range(0, n, step):
        b = min(a + step, n)
        d = _sqdist(z[a:b], z)
        # keep only j > i (each unordered pair once)
        j = torch.arange(n, device=z.device)[None, :]
        i = torch.arange(a, b, device=z.device)[:, None]
        e = torch.where(j > i, -t * d, torch.full_like(d, float("-inf")))
        lse.append(torch.logsumexp(e.reshape(-1).double(), 0))
    total = torch.logsumexp(torch.stack(lse), 0).item()
    return float(total - math.log(n * (n - 1) / 2))


def _pairs(x: torch.Tensor, y: torch.Tensor, caption_image: Any | None) -> torch.Tensor:
    if caption_image is None:
        if len(x) != len(y):
            raise VlmkitError(f"without caption_image, images and texts are paired row by row; got {len(x)} images "
                              f"and {len(y)} texts")
        return torch.arange(len(y), device=x.device)
    ci = as_tensor(caption_image, "caption_image").reshape(-1).long().to(x.device)
    if len(ci) != len(y):
        raise VlmkitError(f"caption_image has {len(ci)} entries for {len(y)} texts")
    if len(ci) and (int(ci.min()) < 0 or int(ci.max()) >= len(x)):
        raise VlmkitError(f"caption_image points outside [0, {len(x)})")
    return ci


def alignment(img_feats: Any, txt_feats: Any, caption_image: Any | None = None, *, alpha: float = 2.0,
              normalize: bool = True) -> float:
    """mean over (image, caption) positive pairs of ‖x − y‖^α."""
    x, y = _pair_feats(img_feats, txt_feats, normalize)
    ci = _pairs(x, y, caption_image)
    return float((x[ci] - y).norm(dim=1).pow(alpha).mean().item())


ANCHORS = ("text", "image")


def relative_alignment(img_feats: Any, txt_feats: Any, caption_image: Any | None = None, *,
                       anchor: str = "text", normalize: bool = True, chunk_size: int | None = None) -> float:
    """mean over positive pairs of (positive sq. distance − the anchor's nearest-negative sq.
    distance), in blocks (definitions in the module docstring).

    ``anchor="text"`` (default, the m²-Mix authors' code): each caption against the other
    images; ``anchor="image"``: each image against the captions of other images. Name the
    anchor with the number ("relative alignment (text anchor)"): the two differ. Negative < 0
    means each anchor is closer to its positive than to any negative.
    """
    if anchor not in ANCHORS:
        raise VlmkitError(f"anchor={anchor!r}: expected 'text' (the m²-Mix authors' code) or 'image'")
    x, y = _pair_feats(img_feats, txt_feats, normalize)
    ci = _pairs(x, y, caption_image)
    n = len(x)
    pos = (x[ci] - y).pow(2).sum(1)
    if anchor == "text":
        if n < 2:
            raise VlmkitError("relative_alignment (text anchor) needs at least 2 images (a negative for every caption)")
        step = auto_chunk(n, chunk_size)
        nearest_neg = torch.empty(len(y), dtype=x.dtype, device=x.device)
        for a in range(0, len(y), step):
            b = min(a + step, len(y))
            d = _sqdist(y[a:b], x)
            own = ci[a:b, None] == torch.arange(n, device=x.device)[None, :]
            nearest_neg[a:b] = d.masked_fill(own, float("inf")).amin(1)
        return float((pos - nearest_neg).mean().item())
    if len(y) < 2 or bool((torch.bincount(ci, minlength=n) == len(y)).any()):
        raise VlmkitError("relative_alignment (image anchor) needs, for every image, at least one caption of another "
                          "image")
    step = auto_chunk(len(y), chunk_size)
    nearest_neg = torch.empty(n, dtype=x.dtype, device=x.device)
    for a in range(0, n, step):
        b = min(a + step, n)
        d = _sqdist(x[a:b], y)
        own = torch.arange(a, b, device=x.device)[:, None] == ci[None, :]
        nearest_neg[a:b] = d.masked_fill(own, float("inf")).amin(1)
    # Images without captions have no positive pair and do not enter the mean.
    return float((pos - nearest_neg[ci]).mean().item())


@dataclass
class ModalityGap:
    """``distance`` = ‖Δ‖, ``direction`` = Δ/‖Δ‖ with Δ = image centroid − text centroid."""

    distance: float
    direction: torch.Tensor
    image_centroid: torch.Tensor
    text_centroid: torch.Tensor


def modality_gap(img_feats: Any, txt_feats: Any, *, normalize: bool = True) -> ModalityGap:
    """Distance and direction between the centroids of (L2-normalised) image and text embeddings."""
    x, y = _pair_feats(img_feats, txt_feats, normalize)
    cx, cy = x.mean(0), y.mean(0)
    delta = cx - cy
    dist = float(delta.norm().item())
    direction = delta / delta.norm() if dist > 0 else torch.zeros_like(delta)
    return ModalityGap(dist, direction, cx, cy)

