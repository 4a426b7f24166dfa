"""Figures of a batch of runs (``vlmkit run --grid``): one metric against one grid parameter,
aggregated over seeds (:mod:`vlmkit.batch` computes the frames these functions draw).

:func:`metric_figure` has two panels side by side:

* left — the metric per series (a method, or a method at fixed values of the other grid
  parameters): for a numeric parameter a line with markers and its 95 % interval as a shaded
  band; for a categorical one grouped bars with the interval as error bars;
* right — the paired difference "method − baseline" (within a seed, then over seeds) drawn the
  same way, with zero marked by a dashed line.

Cells holding fewer seeds than the grid are drawn with open markers (hover says which seeds are
missing); cells with no seed at all are marked × on the parameter axis — never interpolated.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def _rgba(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    return f"rgba({int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{alpha})"


def _hover(r: pd.Series) -> str:
    f = lambda v: "—" if not math.isfinite(v) else f"{v:.4g}"  # noqa: E731
    miss = f"; missing seed(s) {r['missing_seeds']}" if str(r.get("missing_seeds", "")) not in ("", "nan") else ""
    return (f"mean {f(r['mean'])}, sd {f(r['sd'])}<br>95 % interval [{f(r['ci95_lo'])}, {f(r['ci95_hi'])}]"
            f"<br>n = {int(r['n'])} of {int(r['n_expected'])} seed(s){miss}")


def _clipped(v: np.ndarray, bounds: tuple[float, float] | None) -> np.ndarray:
    return v if bounds is None else np.clip(v, *bounds)


def _numeric_panel(fig: go.Figure, frame: pd.DataFrame, param: str, series: Sequence[str], col: int,
                   colours: dict[str, str], show_legend: bool,
                   bounds: tuple[float, float] | None = None) -> list[tuple[float, str]]:
    """Lines + bands of ``frame`` (rows: one per series and parameter value; bands drawn within
    ``bounds``); returns (x, series) of cells with no seed."""
    missing_x: list[tuple[float, str]] = []
    for name in series:
        d = frame[frame["series"] == name].sort_values(param)
        if d.empty:
            continue
        c = colours[name]
        missing_x += [(x, name) for x in d.loc[d["n"] == 0, param].astype(float)]
        # the band: one polygon per run of consecutive cells with a finite interval
        ok = np.isfinite(d["ci95_lo"].to_numpy(float)) & np.isfinite(d["ci95_hi"].to_numpy(float))
        x, lo, hi = (d[param].to_numpy(float), _clipped(d["ci95_lo"].to_numpy(float), bounds),
                     _clipped(d["ci95_hi"].to_numpy(float), bounds))
        start = 0
        while start < len(d):
            if not ok[start]:
                start += 1
                continue
            end = start
            while end + 1 < len(d) and ok[end + 1]:
                end += 1
            xs, ls, hs = x[start:end + 1], lo[start:end + 1], hi[start:end + 1]
            if len(xs) == 1:  # a lone interval: a short horizontal strip is invisible, draw it as a bar
                fig.add_trace(go.Scatter(x=[xs[0], xs[0]], y=[ls[0], hs[0]], mode="lines",
                                         line=dict(color=_rgba(c, 0.35), width=10),
                                         name=f"{name} · 95 % interval", legendgroup=name, showlegend=False,
                                         hoverinfo="skip", meta="band"), row=1, col=col)
            else:
                fig.add_trace(go.Scatter(x=np.concatenate([xs, xs[::-1]]), y=np.concatenate([hs, ls[::-1]]),
                                         fill="toself", mode="lines",
                                         fillcolor=_rgba(c, 0.12), line=dict(width=1, color=_rgba(c, 0.7), dash="dot"),
                                         name=f"{name} · 95 % interval",
                                         legendgroup=name, showlegend=False, hoverinfo="skip", meta="band"),
                              row=1, col=col)
            start = end + 1
        full = (d["n"] >= d["n_expected"]).to_numpy()
        y = d["mean"].where(d["n"] > 0).to_numpy(float)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=name, legendgroup=name, showlegend=show_legend,
                                 line=dict(color=c, width=2), connectgaps=False,
                                 marker=dict(color=[c if f else "white" for f in full], size=9,
                                             line=dict(color=c, width=2), symbol="circle"),
                                 hovertext=[_hover(r) for _, r in d.iterrows()], hoverinfo="text+name", meta="mean"),
                      row=1, col=col)
    return missing_x


def _bar_panel(fig: go.Figure, frame: pd.DataFrame, param: str, series: Sequence[str], col: int,
               colours: dict[str, str], show_legend: bool, bounds: tuple[float, float] | None = None) -> list[str]:
    missing: list[str] = []
    for name in series:
        d = frame[frame["series"] == name]
        if d.empty:
            continue
        x = d[param].astype(str).tolist()
        mean = d["mean"].where(d["n"] > 0).to_numpy(float)
        up = np.nan_to_num(_clipped(d["ci95_hi"].to_numpy(float), bounds) - mean, nan=0.0)
        down = np.nan_to_num(mean - _clipped(d["ci95_lo"].to_numpy(float), bounds), nan=0.0)
        text = ["missing" if n == 0 else ("" if n >= e else f"n={n}/{e}")
                for n, e in zip(d["n"].astype(int), d["n_expected"].astype(int))]
        missing += [f"{name} @ {v}" for v, n in zip(x, d["n"]) if n == 0]
        fig.add_trace(go.Bar(x=x, y=np.nan_to_num(mean, nan=0.0), name=name, legendgroup=name, showlegend=show_legend,
                             marker=dict(color=colours[name], pattern_shape=["x" if n == 0 else ("/" if n < e else "")
                                                                             for n, e in zip(d["n"], d["n_expected"])]),
                             error_y=dict(type="data", symmetric=False, array=up, arrayminus=down, visible=True,
                                          color="#333"),
                             text=text, textposition="outside", hovertext=[_hover(r) for _, r in d.iterrows()],
                             hoverinfo="text+name", meta="mean"), row=1, col=col)
    return missing


def metric_figure(values: pd.DataFrame, diffs: pd.DataFrame, metric: str, param: str | None, *,
                  baseline: str, numeric: bool, bounds: tuple[float, float] | None = None) -> go.Figure:
    """``values`` / ``diffs``: rows of :meth:`vlmkit.batch.Batch.aggregate` / ``.differences``
    for ``metric`` with a ``series`` column (the legend entry) and the x column ``param``
    (``None``: a grid over seeds only, one bar per series).  ``bounds``: the metric's range
    (e.g. 0–100 for a percentage); the left panel's intervals are drawn within it (with two
    seeds t(0.975, 1) = 12.7 makes them wide) and the subtitle says so when one was cut; hover
    and the tables keep the full interval.  See the module docstring."""
    values, diffs = values.copy(), diffs.copy()
    if param is None:
        param, numeric = "grid point", False
        values[param], diffs[param] = "all runs", "all runs"
    series = list(dict.fromkeys(values["series"]))
    dseries = list(dict.fromkeys(diffs["series"])) if len(diffs) else []
    colours = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(series)}
    for i, s in enumerate(dseries):  # "A − baseline" in A's colour
        colours.setdefault(s, colours.get(s.replace(f" − {baseline}", ""), PALETTE[(len(series) + i) % len(PALETTE)]))
    how = "band" if numeric else "error bars"
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                        subplot_titles=(f"mean over seeds, 95 % t-interval as {how}",
                                        f"paired difference method − {baseline} (same seed); dashed: 0"))
    panel = _numeric_panel if numeric else _bar_panel
    miss_left = panel(fig, values, param, series, 1, colours, True, bounds)
    miss_right = panel(fig, diffs, param, dseries, 2, colours, True) if len(diffs) else []
    if numeric:
        for col, miss, frame in ((1, miss_left, values), (2, miss_right, diffs)):
            if miss:
                xs = sorted({x for x, _ in miss})
                ys = pd.concat([frame["mean"], frame["ci95_lo"]]).astype(float)
                floor = float(ys[np.isfinite(ys)].min()) if np.isfinite(ys).any() else 0.0
                text = ["no seed (missing, not averaged): " + ", ".join(n for x2, n in miss if x2 == x) for x in xs]
                fig.add_trace(go.Scatter(x=xs, y=[floor] * len(xs), mode="markers", name="no seed (missing)",
                                         marker=dict(symbol="x", size=12, color="#8a5a00"), showlegend=col == 1,
                                         hovertext=text, hoverinfo="text", meta="missing"), row=1, col=col)
    else:
        fig.update_layout(barmode="group")
    fig.add_hline(y=0, line=dict(color="#555", dash="dash", width=1.5), row=1, col=2)
    if not len(diffs):
        fig.add_annotation(text=f"no paired difference:<br>{baseline} or the other methods<br>do not report this "
                                "metric",
                           xref="x2 domain", yref="y2 domain", x=0.5, y=0.6, showarrow=False,
                           font=dict(size=13, color="#666"))
    for col in (1, 2):
        fig.update_xaxes(title_text=param, row=1, col=col, type="linear" if numeric else "category")
    fig.update_yaxes(title_text=metric, row=1, col=1)
    fig.update_yaxes(title_text=f"Δ {metric}", row=1, col=2)
    note = ("open markers: fewer seeds than the grid; × on the axis: a cell with no seed" if numeric
            else "hatched bars and n=k/K: fewer seeds than the grid; 'missing': no seed")
    cut = bounds is not None and ((values["ci95_lo"] < bounds[0]) | (values["ci95_hi"] > bounds[1])).any()
    if cut:
        note += f"; intervals drawn within the metric's range [{bounds[0]:g}, {bounds[1]:g}]"
    fig.update_layout(title=dict(text=f"{metric} against {param}<br><sup>{note}; hover for n and the missing "
                                      "seeds</sup>", x=0.01),
                      width=1150, height=500, template="plotly_white", legend=dict(orientation="h", y=-0.2, x=0),
                      margin=dict(t=90, b=110))
    return fig
