"""Score distributions: similarity histograms by pair type, reliability diagrams, uncertainty bins."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..utils import VlmkitError, as_numpy

PAIR_COLOURS = {"positive (labelled)": "#2ca02c", "false negative (true, unlabelled)": "#ff7f0e",
                "true negative": "#7f7f7f"}


def pair_types(labels: np.ndarray, positives: np.ndarray) -> np.ndarray:
    """0 = labelled positive, 1 = false negative (true but unlabelled), 2 = true negative."""
    labels, positives = np.asarray(labels, bool), np.asarray(positives, bool)
    if labels.shape != positives.shape:
        raise VlmkitError(f"labels {labels.shape} and positives {positives.shape} differ in shape")
    return np.where(labels, 0, np.where(positives, 1, 2))


def similarity_histogram(sims: Any, labels: Any, positives: Any, *, title: str = "Similarity by pair type",
                         max_negatives: int = 200_000, bins: int = 80, seed: int = 0,
                         x_label: str = "cosine similarity") -> go.Figure:
    """Overlaid, per-type normalised histograms of ``sims`` for positives / false negatives / true negatives.

    Binned here (``bins`` shared equal-width bins spanning all scores): each pair type is one bar
    trace of densities (``y``; counts in ``customdata``), so the figure stays a few kB whatever the
    number of pairs.  True negatives are subsampled to ``max_negatives`` (seeded); the legend
    counts every pair.
    """
    s = as_numpy(sims, "sims", dtype=np.float64)
    t = pair_types(labels, positives)
    if s.shape != t.shape:
        raise VlmkitError(f"sims {s.shape} and labels {t.shape} differ in shape")
    rng = np.random.default_rng(seed)
    lo, hi = float(np.nanmin(s)), float(np.nanmax(s))
    edges = np.linspace(lo, hi if hi > lo else lo + 1e-6, bins + 1)
    width = float(edges[1] - edges[0])
    fig = go.Figure()
    for k, (name, colour) in enumerate(PAIR_COLOURS.items()):
        v = s[t == k]
        if k == 2 and len(v) > max_negatives:  # only true negatives are thinned out (they are ~all pairs)
            v = rng.choice(v, max_negatives, replace=False)
        if len(v) == 0:
            continue
        counts, _ = np.histogram(v, bins=edges)
        fig.add_trace(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=counts / (counts.sum() * width), width=width,
                             customdata=counts, name=f"{name} (n={int((t == k).sum()):,})", marker_color=colour,
                             opacity=0.55,
                             hovertemplate="score %{x:.3f}<br>density %{y:.3f}<br>pairs in bin %{customdata}"))
    fig.update_layout(barmode="overlay", bargap=0, title=title, xaxis_title=x_label,
                      yaxis_title="density (per pair type)", legend=dict(orientation="h", y=-0.2))
    return fig


def pair_type_histogram_figure(hist: Any, *, title: str = "Similarity by pair type",
                               x_label: str = "cosine similarity") -> go.Figure:
    """The figure of :func:`similarity_histogram` from an exact, streamed
    :class:`vlmkit.metrics.streaming.PairTypeHistogram` (every pair counted, true negatives
    included: nothing subsampled, memory one block of the score matrix)."""
    edges = np.asarray(hist.edges, dtype=np.float64)
    width = float(edges[1] - edges[0])
    fig = go.Figure()
    for k, (name, colour) in enumerate(PAIR_COLOURS.items()):
        counts = np.asarray(hist.counts[k])
        if counts.sum() == 0:
            continue
        fig.add_trace(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=hist.density(k), width=width,
                             customdata=counts, name=f"{name} (n={int(hist.n[k]):,})", marker_color=colour,
                             opacity=0.55,
                             hovertemplate="score %{x:.3f}<br>density %{y:.3f}<br>pairs in bin %{customdata}"))
    fig.update_layout(barmode="overlay", bargap=0, title=title, xaxis_title=x_label,
                      yaxis_title="density (per pair type)", legend=dict(orientation="h", y=-0.2))
    return fig


def reliability_figure(bins: pd.DataFrame, ece: float, *, title: str = "Reliability diagram") -> go.Figure:
    """Accuracy vs mean confidence per bin (bars), the diagonal, and bin counts on hover; ECE in the
    title.  Under it, sharing the confidence axis, the histogram of the queries' top-1 confidences
    (share of queries per bin), so an empty range of confidence is visible as such."""
    need = {"lo", "hi", "count", "confidence", "accuracy"}
    if not need <= set(bins.columns):
        raise VlmkitError(f"reliability_figure: bins need columns {sorted(need)}")
    mid = (bins["lo"] + bins["hi"]) / 2
    width = float((bins["hi"] - bins["lo"]).iloc[0])
    count = bins["count"].to_numpy()
    share = count / max(int(count.sum()), 1)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.72, 0.28], vertical_spacing=0.06)
    fig.add_trace(go.Bar(x=mid, y=bins["accuracy"].fillna(0), width=width * 0.95, name="top-1 accuracy per bin",
                         marker_color="#1f77b4", customdata=bins["count"],
                         hovertemplate="conf bin %{x:.2f}<br>acc %{y:.3f}<br>n=%{customdata}"),
                  row=1, col=1)
    fig.add_trace(go.Scatter(x=bins["confidence"], y=bins["accuracy"], mode="markers",
                             name="(mean confidence, accuracy)", marker=dict(color="#d62728", size=7)), row=1, col=1)
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                             line=dict(dash="dash", color="grey")), row=1, col=1)
    fig.add_trace(go.Bar(x=mid, y=share, width=width * 0.95, name="share of queries per bin", marker_color="#7f7f7f",
                         customdata=bins["count"],
                         hovertemplate="conf bin %{x:.2f}<br>%{y:.1%} of queries<br>n=%{customdata}"), row=2, col=1)
    fig.update_layout(title=f"{title} — ECE {100 * ece:.2f}%", legend=dict(orientation="h", y=-0.25))
    fig.update_xaxes(range=[0, 1], row=1, col=1)
    fig.update_xaxes(range=[0, 1], title_text="confidence of top-1", row=2, col=1)
    fig.update_yaxes(range=[0, 1.05], title_text="accuracy of top-1", row=1, col=1)
    fig.update_yaxes(title_text="queries", tickformat=".0%", rangemode="tozero", row=2, col=1)
    return fig


def uncertainty_figure(bins: pd.DataFrame, r: float, *, title: str = "Uncertainty vs R@1") -> go.Figure:
    """R@1 per uncertainty bin (VACSR Fig. 3 style) with Pearson r in the title; point size ∝ count."""
    need = {"uncertainty", "r1", "count"}
    if not need <= set(bins.columns):
        raise VlmkitError(f"uncertainty_figure: bins need columns {sorted(need)}")
    b = bins[bins["count"] > 0]
    size = 8 + 22 * np.sqrt(b["count"] / b["count"].max())
    fig = go.Figure(go.Scatter(x=b["uncertainty"], y=100 * b["r1"], mode="lines+markers",
                               name="R@1 per bin (size ∝ queries)", marker=dict(size=size), customdata=b["count"],
                               hovertemplate="u=%{x:.3f}<br>R@1=%{y:.1f}%<br>n=%{customdata}"))
    fig.update_layout(title=f"{title} — Pearson r = {r:.3f}", xaxis_title="mean uncertainty of top-1 pair (bin)",
                      yaxis_title="R@1 (%)", showlegend=True, legend=dict(orientation="h", y=-0.2))
    return fig


def fig3_figure(report: dict, direction: str, protocol: str = "labels", binning: str = "width", *,
                title: str = "VACSR Fig. 3") -> go.Figure:
    """Fig. 3 of one direction and protocol from :func:`vlmkit.vacsr.fig3_report`: R@1 per bin of
    the top-1 pair's σ² (left) beside the control, uncertainty := −score (right), each titled
    with its Pearson r and bootstrap 95 % interval; point size ∝ queries in the bin."""
    b, s = report["bins"], report["summary"]
    key = (b["direction"] == direction) & (b["protocol"] == protocol) & (b["binning"] == binning)
    if not key.any():
        raise VlmkitError(f"fig3_figure: the report has no bins for direction={direction!r}, protocol={protocol!r}, "
                          f"binning={binning!r}")
    names = []
    for source in ("sigma2", "-score"):
        row = s[(s["direction"] == direction) & (s["protocol"] == protocol) & (s["binning"] == binning)
                & (s["source"] == source)].iloc[0]
        label = "σ² (VACSR)" if source == "sigma2" else "control: −score"
        names.append(f"{label}: r = {row['pearson_r']:.3f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]")
    fig = make_subplots(rows=1, cols=2, subplot_titles=names)
    for col, source in enumerate(("sigma2", "-score"), start=1):
        d = b[key & (b["source"] == source) & (b["count"] > 0)]
        size = 8 + 22 * np.sqrt(d["count"] / d["count"].max())
        fig.add_trace(go.Scatter(x=d["mean_uncertainty"], y=100 * d["r1"], mode="lines+markers", marker=dict(size=size),
                                 name=names[col - 1], customdata=np.stack([d["count"], d["hits"]], axis=1),
                                 hovertemplate="u=%{x:.3f}<br>R@1=%{y:.1f}%<br>n=%{customdata[0]}, "
                                               "hits=%{customdata[1]}"),
                      row=1, col=col)
        fig.update_xaxes(title_text=("mean top-1 uncertainty (bin)" if source == "sigma2"
                                     else "mean −(top-1 score) (bin)"), row=1, col=col)
    fig.update_yaxes(title_text="R@1 (%)", row=1, col=1)
    truth = "one-to-one labels (the paper's protocol)" if protocol == "labels" else protocol
    fig.update_layout(title=f"{title} — {direction}, correct = {truth}, "
                            f"{binning == 'width' and 'equal-width' or 'equal-count'} bins",
                      showlegend=False, height=420)
    return fig
