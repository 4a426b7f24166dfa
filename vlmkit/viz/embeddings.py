"""Embedding geometry figures: 2-D/3-D projections with pair lines, and the modality-gap sweep."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..utils import VlmkitError, as_numpy

IMG_COLOUR, TXT_COLOUR, LINE_COLOUR = "#1f77b4", "#d62728", "rgba(120,120,120,0.35)"


def _np(x: Any) -> np.ndarray:
    return as_numpy(x, "embeddings", dtype=np.float64)


def project_embeddings(img: Any, txt: Any, method: str = "pca", dim: int = 2,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Project image (N, d) and text (M, d) embeddings *jointly* to ``dim`` coordinates.

    ``"pca"``: SVD of the centred union (so the first axis usually is the gap direction);
    ``"umap"``: umap-learn with cosine metric (slow at first call; subsample first).
    """
    x, y = _np(img), _np(txt)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise VlmkitError(f"project_embeddings: expected (N, d) and (M, d) with equal d, got {x.shape} and {y.shape}")
    if dim not in (2, 3):
        raise VlmkitError(f"dim must be 2 or 3, got {dim}")
    z = np.concatenate([x, y])
    if method == "pca":
        zc = z - z.mean(0)
        _, _, vt = np.linalg.svd(zc, full_matrices=False)
        p = zc @ vt[:dim].T
        # fix the sign so images sit on the positive side of axis 1 (stable pictures)
        if p[: len(x), 0].mean() < 0:
            p[:, 0] = -p[:, 0]
    elif method == "umap":
        import umap

        p = umap.UMAP(n_components=dim, metric="cosine", random_state=seed,
                      n_neighbors=min(15, len(z) - 1)).fit_transform(z)
    else:
        raise VlmkitError(f"projection method must be 'pca' or 'umap', got {method!r}")
    return p[: len(x)], p[len(x):]


def subsample_pairs(n_images: int, caption_image: Any, max_images: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded subset of images and *all* their captions (for readable, fast projections)."""
    ci = np.asarray(caption_image).reshape(-1)
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(n_images, size=min(max_images, n_images), replace=False))
    caps = np.flatnonzero(np.isin(ci, keep))
    return keep, caps


def embedding_figure(img: Any, txt: Any, caption_image: Any | None = None, *, method: str = "pca", dim: int = 2,
                     n_lines: int = 50, title: str = "Image and text embeddings", seed: int = 0) -> go.Figure:
    """Scatter of projected image and text embeddings, with lines joining ``n_lines`` matched pairs."""
    x, y = _np(img), _np(txt)
    ci = np.arange(len(y)) if caption_image is None else np.asarray(caption_image).reshape(-1)
    px, py = project_embeddings(x, y, method, dim, seed)
    label = "PC" if method == "pca" else "UMAP "
    sc = go.Scatter3d if dim == 3 else go.Scatter
    kw = dict(mode="markers")
    def pts(p):
        return dict(x=p[:, 0], y=p[:, 1], **({"z": p[:, 2]} if dim == 3 else {}))
    fig = go.Figure()
    # pair lines first so markers sit on top
    idx = np.random.default_rng(seed).choice(len(y), size=min(n_lines, len(y)), replace=False) if n_lines else []
    if len(idx):
        segs = [np.stack([px[ci[j]], py[j], np.full(dim, np.nan)]) for j in idx]
        s = np.concatenate(segs)
        fig.add_trace(sc(**pts(s), mode="lines", line=dict(color=LINE_COLOUR, width=1),
                         name=f"matched pairs ({len(idx)})"))
    msize = 3 if dim == 3 else 5
    fig.add_trace(sc(**pts(px), **kw, marker=dict(color=IMG_COLOUR, size=msize, opacity=0.7),
                     name=f"images ({len(px)})"))
    fig.add_trace(sc(**pts(py), **kw, marker=dict(color=TXT_COLOUR, size=msize, opacity=0.5),
                     name=f"captions ({len(py)})"))
    if dim == 3:
        fig.update_layout(scene=dict(xaxis_title=f"{label}1", yaxis_title=f"{label}2", zaxis_title=f"{label}3"))
    else:
        fig.update_xaxes(title_text=f"{label}1")
        fig.update_yaxes(title_text=f"{label}2")
    fig.update_layout(title=title, legend=dict(orientation="h", y=-0.15))
    return fig


def gap_shift_figure(table: pd.DataFrame, title: str = "Embedding shift along the gap direction") -> go.Figure:
    """Gap, R@1 and contrastive loss against the shift (table from :func:`vlmkit.analysis.embedding_shift`)."""
    need = {"shift", "gap", "r1_i2t", "r1_t2i", "loss"}
    if not need <= set(table.columns):
        raise VlmkitError(f"gap_shift_figure: table needs columns {sorted(need)}, has {list(table.columns)}")
    fig = make_subplots(rows=1, cols=3, subplot_titles=("modality gap ‖Δ‖", "R@1 (%)", "contrastive loss"))
    fig.add_trace(go.Scatter(x=table["shift"], y=table["gap"], mode="lines+markers", name="gap"), 1, 1)
    fig.add_trace(go.Scatter(x=table["shift"], y=table["r1_i2t"], mode="lines+markers", name="R@1 image→text"), 1, 2)
    fig.add_trace(go.Scatter(x=table["shift"], y=table["r1_t2i"], mode="lines+markers", name="R@1 text→image"), 1, 2)
    fig.add_trace(go.Scatter(x=table["shift"], y=table["loss"], mode="lines+markers", name="loss (τ fixed)"), 1, 3)
    for c in (1, 2, 3):
        fig.add_vline(x=0, line_dash="dot", line_color="grey", row=1, col=c)
        fig.update_xaxes(title_text="shift s (0 = original; 1 = centroids meet)", row=1, col=c)
    fig.update_yaxes(title_text="‖centroid_img − centroid_txt‖", row=1, col=1)
    fig.update_yaxes(title_text="R@1 (%)", row=1, col=2)
    fig.update_yaxes(title_text="loss", row=1, col=3)
    fig.update_layout(title=title, legend=dict(orientation="h", y=-0.2))
    return fig


def gap_bar_figure(table: pd.DataFrame, title: str = "Modality gap per method") -> go.Figure:
    """Bar chart of the gap distance per method (columns ``method, gap``)."""
    fig = go.Figure(go.Bar(x=table["method"], y=table["gap"], name="‖Δ‖", text=[f"{v:.3f}" for v in table["gap"]],
                           textposition="outside"))
    fig.update_layout(title=title, xaxis_title="method", yaxis_title="gap ‖centroid_img − centroid_txt‖",
                      showlegend=True)
    return fig
