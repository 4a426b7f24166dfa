"""``docs/results.md`` from a ledger record: the rule, the command, wall time, package versions,
one table row per claim (with the preconditions it was read under and whether each held), a
paragraph per claim, and the figures it references (``<doc dir>/results/``)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from ..utils import atomic_write_text
from .verdicts import RULE

LABELS = {"contrastive": "contrastive FT", "sigmoid": "sigmoid FT", "m2mix": "m²-Mix",
          "m2mix-linear": "m²-Mix (linear)", "vacsr-joint": "VACSR (joint)"}


def _title(text: str, detail: str) -> dict:
    """A figure title whose detail line wraps under it in a smaller font (PNG exports are 900 px wide)."""
    import textwrap

    lines = "<br>".join(textwrap.wrap(detail, 110))
    return {"text": f"{text}<br><span style='font-size:11px'>{lines}</span>", "x": 0.01, "xanchor": "left"}


def ua_figure(ledger: dict) -> go.Figure:
    """Uniformity vs relative alignment per method, epoch 0 (zero-shot) → last epoch, mean over seeds
    (m²-Mix Fig. 2)."""
    fig = go.Figure()
    for m, t in ledger["trajectories"].items():
        # m²-Mix and its linear ablation can coincide to the pixel: the ablation dashed, wider markers under it
        linear = m.endswith("-linear")
        fig.add_trace(go.Scatter(x=t["uniformity"], y=t["rel_alignment"], mode="lines+markers+text",
                                 name=LABELS.get(m, m), line={"dash": "dash" if linear else "solid",
                                                              "width": 2 if linear else 4},
                                 marker={"size": 6 if linear else 11},
                                 text=[str(e) for e in range(len(t["uniformity"]))], textposition="top center"))
    fig.update_layout(title=_title("Uniformity vs relative alignment over training (m²-Mix Fig. 2)",
                                   "epoch labels, 0 = zero-shot; lower is better on both; test split, mean over seeds"),
                      xaxis_title="uniformity (union, t = 2)",
                      yaxis_title="relative alignment (text anchor)")
    return fig


def hardness_figure(ledger: dict) -> go.Figure:
    """Mean cosine of anchors to original vs m²-Mix negatives per epoch, per method (m²-Mix Fig. 4 b–c)."""
    fig = go.Figure()
    for m, t in ledger["trajectories"].items():
        if m not in ("m2mix", "contrastive"):
            continue
        x = list(range(len(t["hardness_original"])))
        fig.add_trace(go.Scatter(x=x, y=t["hardness_original"], mode="lines+markers",
                                 name=f"{LABELS.get(m, m)}: original"))
        fig.add_trace(go.Scatter(x=x, y=t["hardness_mixed"], mode="lines+markers", name=f"{LABELS.get(m, m)}: mixed",
                                 line={"dash": "dash"}))
    fig.update_layout(title=_title("Hardness of negatives over training (m²-Mix Fig. 4 b–c)",
                                   "mean cosine of each test image to original t_j vs mixed slerp(v_j, t_j; 0.5); "
                                   "first caption per image; mean over seeds"),
                      xaxis_title="epoch (0 = zero-shot)", xaxis={"dtick": 1}, yaxis_title="mean cosine")
    return fig


#: where the interval-unit axis is cut (a comparison further out is drawn at the edge, its true value in its label)
INTERVAL_AXIS = 8.0


def interval_units(comp: dict) -> tuple[float, bool]:
    """A comparison's signed mean in units of its own 95 % half-width, ``(x, clipped)``: x > 1
    iff it holds, x < −1 iff it is reversed (the rule); ``x`` is cut to ±:data:`INTERVAL_AXIS`
    (a zero-width interval gives the edge, NaN without an interval)."""
    d, mean, lo, hi = comp["direction"], comp["mean"], comp["lo"], comp["hi"]
    if not (math.isfinite(mean) and math.isfinite(lo) and math.isfinite(hi)):
        return math.nan, False
    half = (hi - lo) / 2
    x = d * mean / half if half > 0 else math.copysign(math.inf, d * mean) if mean else 0.0
    return max(-INTERVAL_AXIS, min(INTERVAL_AXIS, x)), abs(x) > INTERVAL_AXIS


def intervals_figure(ledger: dict) -> go.Figure:
    """Every comparison on one axis: its signed mean in units of its own 95 % half-width (the
    interval is then x ± 1, so the rule reads off the axis: holds right of +1, reversed left of −1),
    and its value and interval in its own units written beside it — R@1 points, AUROC and Pearson
    r differences differ by orders of magnitude, so a shared raw axis hides most rows."""
    ys, xs, colours, notes = [], [], [], []
    palette = {"holds": "#1a9850", "does not hold": "#d73027", "inconclusive": "#878787"}
    for c in ledger["claims"]:
        for comp in c["comparisons"]:
            x, clipped = interval_units(comp)
            ys.append(f"{c['number']}.{' †' if c.get('caveat') else ''} {comp['label']}")
            xs.append(x if math.isfinite(x) else 0.0)
            colours.append(palette[comp["outcome"]])
            raw = (f"{comp['mean']:+.3g} [{comp['lo']:+.3g}, {comp['hi']:+.3g}]" if math.isfinite(comp["lo"])
                   else f"{comp['mean']:+.3g} (no interval)" if math.isfinite(comp["mean"]) else "not measured")
            notes.append(raw + (" ▸" if clipped else ""))
    err = [1.0 if math.isfinite(interval_units(comp)[0]) else 0.0
           for c in ledger["claims"] for comp in c["comparisons"]]
    fig = go.Figure(go.Scatter(x=xs, y=ys, mode="markers", marker={"color": colours, "size": 8},
                               error_x={"type": "data", "array": err, "color": "#444"}))
    for y, note in zip(ys, notes):  # the raw numbers in a column right of the plot
        fig.add_annotation(x=1.01, xref="paper", y=y, text=note, showarrow=False, xanchor="left", font={"size": 10})
    for edge in (-1, 1):
        fig.add_vline(x=edge, line_dash="dash", line_color="#999")
    fig.add_vline(x=0, line_dash="dot")
    fig.update_layout(title=_title("Each comparison: signed mean in units of its 95 % t-interval half-width",
                                   "the bar is the interval (x ± 1): right of +1 the comparison holds, left of −1 "
                                   "it is reversed; beside each point its mean [interval] in its own units (▸: "
                                   f"beyond ±{INTERVAL_AXIS:g}, drawn at the edge); green holds, red reversed, grey "
                                   "inconclusive; † a precondition of the claim failed, so it is not read"),
                      height=max(400, 140 + 21 * len(ys)), width=1100, margin={"t": 110, "r": 230},
                      showlegend=False,
                      yaxis={"autorange": "reversed", "tickmode": "array", "tickvals": ys, "ticktext": ys},
                      xaxis={"range": [-INTERVAL_AXIS - 1.5, INTERVAL_AXIS + 1.5], "zeroline": False,
                             "title": "signed mean / interval half-width (> 1: holds; < −1: reversed)"})
    return fig


def preconditions_text(claim: dict) -> str:
    """``name: held (detail)`` for each precondition of a claim record; "none" without any."""
    pre = claim.get("preconditions") or []
    return "; ".join(f"{p['name']}: {'held' if p['held'] else 'did not hold'} ({p['detail']})" for p in pre) or "none"


def verdict_table(ledger: dict) -> pd.DataFrame:
    """One row per claim: number, claim, paper, vlmkit values, intervals, preconditions, protocol, verdict (the
    document's table)."""
    return pd.DataFrame([{"#": c["number"], "claim": c["claim"], "paper": c["paper"],
                          "vlmkit (mean ± sd)": c["values"],
                          "95 % intervals": "; ".join(x["text"] for x in c["comparisons"]),
                          "preconditions": preconditions_text(c), "protocol": c["protocol"],
                          "verdict": c["verdict"]} for c in ledger["claims"]])


FIGURES = {"uniformity_alignment": ua_figure, "hardness": hardness_figure, "intervals": intervals_figure}


def write_figures(ledger: dict, folder: Path) -> dict[str, str]:
    """Save every figure under ``folder`` (HTML, and PNG when a browser is available); name → file written."""
    from ..viz import save_figure

    out = {}
    for name, make in FIGURES.items():
        if name != "intervals" and not ledger["trajectories"]:
            continue
        paths = save_figure(make(ledger), folder / name)  # PNG at the figure's own layout size
        out[name] = str(paths.get("png", paths["html"]))
    return out


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render(ledger: dict, figures: dict[str, str], doc: Path) -> str:
    """The markdown text of the results document."""
    wall = ledger["wall_seconds"]
    n_units = ledger.get("n_units", "cached")
    lines = ["# The claims ledger: every headline claim re-tested on exact ground truth", "",
             "Generated by `vlmkit claims`; do not edit by hand. "
             + ("**This is a `--quick` run (tiny sizes): its verdicts mean nothing.**"
                if ledger["config"]["quick_mode"] else ""), "",
             "## The rule", "", RULE, "",
             "## How it was made", "", f"- command: `{ledger['command']}`",
             f"- time: {ledger['compute_seconds'] / 60:.1f} min of compute over the "
             f"{n_units if not ledger.get('not_run') else n_units - len(ledger['not_run'])} experiments"
             f"{' that ran' if ledger.get('not_run') else ''}, "
             f"each timed when it ran ({ledger['device']}) — about the wall time of the whole ledger from scratch "
             f"in one invocation with one worker; this invocation ({ledger.get('workers', 1)} worker(s)) "
             f"took {wall / 60:.1f} min and computed {len(ledger['trained'])} of them "
             f"(the others came from the cache); seeds "
             f"{', '.join(map(str, ledger['config']['seeds']))}",
             "- package versions: " + ", ".join(f"{k} {v}" for k, v in ledger["versions"].items()),
             f"- sizes: {ledger['sizes']}", ""]
    not_run = ledger.get("not_run") or []
    if not_run:
        lines[-1:] = [f"- **incomplete**: {len(not_run)} of the {n_units} experiments have not run yet (this "
                      f"invocation started none after {ledger.get('max_minutes')} min, `--max-minutes`): "
                      + ", ".join(f"`{n}`" for n in not_run[:6]) + (", …" if len(not_run) > 6 else "")
                      + ". The claims that read them are inconclusive and name them; rerun the command to "
                      "complete the ledger (the cache resumes).", ""]
    lines += ["## Verdicts", "",
              "| # | claim | paper | vlmkit (mean ± sd over seeds) | 95 % interval of each comparison "
              "| preconditions | protocol | verdict |",
              "|---|---|---|---|---|---|---|---|"]
    for c in ledger["claims"]:
        intervals = "; ".join(x["text"] for x in c["comparisons"])
        lines.append(f"| {c['number']} | {_cell(c['claim'])} | {_cell(c['paper'])} | {_cell(c['values'])} "
                     f"| {_cell(intervals)} | "
                     f"{_cell(preconditions_text(c))} | {_cell(c['protocol'])} | **{c['verdict']}** |")
    lines += ["", "## What each result means", ""]
    for c in ledger["claims"]:
        lines += [f"**{c['number']}. {c['claim']}** {c['paragraph']}", ""]
    if figures:
        lines += ["## Figures", ""]
        for name, path in figures.items():
            rel = os.path.relpath(path, doc.parent)
            lines.append(f"- [{name}]({rel})" if not rel.endswith(".png") else f"![{name}]({rel})")
        lines.append("")
    return "\n".join(lines)


def write_document(ledger: dict, doc: str | os.PathLike) -> Path:
    """Write the document and its figures (``<doc dir>/results/``); returns the document's path."""
    doc = Path(doc)
    figures = write_figures(ledger, doc.parent / "results")
    ledger["figures"] = figures
    atomic_write_text(doc, render(ledger, figures, doc))
    return doc
