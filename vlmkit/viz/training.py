"""Training curves of the fine-tuning runs (and of VACSR on frozen features), per epoch."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..utils import VlmkitError

_FT_COLUMNS = ("epoch", "train_loss", "rsum")


def training_curves(histories: dict[str, pd.DataFrame], vacsr: pd.DataFrame | None = None, *,
                    title: str = "Training per epoch") -> go.Figure:
    """Per method: mean training loss and validation RSUM after each epoch; with ``vacsr`` (the
    frozen-feature history: ``epoch`` plus loss terms) a third panel with its total and
    reconstruction terms. ``histories`` are the ``FinetuneResult.history`` tables
    (``history_<method>`` in a run); the validation protocol is named in the panel title when the
    tables carry ``val_protocol``.
    """
    for name, h in histories.items():
        missing = [c for c in _FT_COLUMNS if c not in h.columns]
        if missing:
            raise VlmkitError(f"histories[{name!r}]: missing columns {missing}; expected {list(_FT_COLUMNS)}")
    if vacsr is not None and not {"epoch", "total"} <= set(vacsr.columns):
        raise VlmkitError(f"vacsr history: expected columns 'epoch' and 'total', got {list(vacsr.columns)}")
    protos = {str(h["val_protocol"].iloc[-1]) for h in histories.values() if "val_protocol" in h.columns and len(h)}
    protocol = f"validation: {', '.join(sorted(protos))}, one-to-one labels" if protos else ""
    cols = 3 if vacsr is not None else 2
    titles = ["training loss", "validation RSUM"] + (["VACSR (frozen) loss terms"] if vacsr is not None else [])
    fig = make_subplots(rows=1, cols=cols, subplot_titles=titles)
    palette = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#ff7f0e")
    for i, (name, h) in enumerate(histories.items()):
        colour = palette[i % len(palette)]
        fig.add_trace(go.Scatter(x=h["epoch"], y=h["train_loss"], name=name, mode="lines+markers", legendgroup=name,
                                 line=dict(color=colour)), row=1, col=1)
        fig.add_trace(go.Scatter(x=h["epoch"], y=h["rsum"], name=name, mode="lines+markers", legendgroup=name,
                                 showlegend=False, line=dict(color=colour)), row=1, col=2)
    if vacsr is not None:
        for term, dash in (("total", "solid"), ("recon", "dot")):
            if term in vacsr.columns:
                fig.add_trace(go.Scatter(x=vacsr["epoch"], y=vacsr[term], name=f"VACSR {term}", mode="lines+markers",
                                         line=dict(color="#ff7f0e", dash=dash)), row=1, col=3)
    for c in range(1, cols + 1):
        fig.update_xaxes(title_text="epoch", row=1, col=c)
    fig.update_yaxes(title_text="loss", row=1, col=1)
    fig.update_yaxes(title_text="RSUM", row=1, col=2)
    if vacsr is not None:
        fig.update_yaxes(title_text="loss term", row=1, col=3)
    fig.update_layout(title=title + (f"<br><sup>{protocol}; training loss = mean over the epoch</sup>"
                                     if protocol else ""),
                      height=420, width=420 * cols, legend=dict(orientation="h", y=-0.25), margin=dict(t=110))
    return fig
