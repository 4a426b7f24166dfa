"""Geodesic-mixup views: retrieval along a slerp path, and hardness of mixed vs original negatives."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from ..utils import VlmkitError

KIND_SYMBOL = {"image": "square", "text": "circle"}


def slerp_path_figure(table: pd.DataFrame, *, title: str = "Nearest gallery items along slerp(v, t; λ)") -> go.Figure:
    """λ on x, rank on y; each marker a gallery item (symbol = modality, colour = true for the query).

    ``table``: rows ``lam, rank, modality, index, similarity, label, relevant`` as made by
    :func:`vlmkit.analysis.slerp_neighbours`.
    """
    need = {"lam", "rank", "modality", "index", "similarity"}
    if not need <= set(table.columns):
        raise VlmkitError(f"slerp_path_figure: table needs {sorted(need)}")
    fig = go.Figure()
    rel = table["relevant"] if "relevant" in table else pd.Series(False, index=table.index)
    for mod in ("image", "text"):
        for ok, colour, word in ((True, "#2ca02c", "true for the query"), (False, "#7f7f7f", "not true")):
            sub = table[(table["modality"] == mod) & (rel == ok)]
            if sub.empty:
                continue
            text = sub["label"] if "label" in sub else sub["index"].astype(str)
            fig.add_trace(go.Scatter(x=sub["lam"], y=sub["rank"], mode="markers", name=f"{mod} ({word})",
                                     marker=dict(symbol=KIND_SYMBOL[mod], size=12, color=colour,
                                                 line=dict(width=1, color="black")),
                                     text=text, customdata=sub["similarity"],
                                     hovertemplate="λ=%{x:.2f} rank %{y}<br>%{text}<br>cos=%{customdata:.3f}"))
    fig.update_yaxes(autorange="reversed", title_text="rank among the gallery (1 = nearest)", dtick=1)
    fig.update_layout(title=title, xaxis_title="λ (1 = the image v, 0 = the caption t)",
                      legend=dict(orientation="h", y=-0.2))
    return fig


def hardness_figure(table: pd.DataFrame, *, title: str = "Hardness of mixed vs original negatives") -> go.Figure:
    """Histograms of anchor–negative cosine for original and slerp-mixed negatives (columns ``kind, similarity``)."""
    if not {"kind", "similarity"} <= set(table.columns):
        raise VlmkitError("hardness_figure: table needs columns kind, similarity")
    fig = go.Figure()
    for kind, colour in zip(sorted(table["kind"].unique()), ("#9467bd", "#8c564b", "#17becf", "#bcbd22")):
        v = table.loc[table["kind"] == kind, "similarity"]
        fig.add_trace(go.Histogram(x=v, histnorm="probability density", name=f"{kind} (mean {v.mean():.3f})",
                                   opacity=0.6, marker_color=colour, nbinsx=60))
    fig.update_layout(barmode="overlay", title=title, xaxis_title="cosine(anchor image, negative)",
                      yaxis_title="density", legend=dict(orientation="h", y=-0.2))
    return fig
