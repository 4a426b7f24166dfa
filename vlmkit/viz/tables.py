"""Report tables as figures (plotly Table) and as HTML fragments."""

from __future__ import annotations

import html

import pandas as pd
import plotly.graph_objects as go


def _fmt(v) -> str:
    if isinstance(v, float):
        return "–" if v != v else f"{v:.4g}"
    return str(v)


def table_figure(df: pd.DataFrame, *, title: str, max_rows: int = 60, transpose: bool | None = None) -> go.Figure:
    """A plotly table of ``df`` (first ``max_rows`` rows, all-empty columns dropped); the title
    must name the protocol. ``transpose`` (default: when there are more than 8 columns, at
    most 12 rows and the first column is a unique key) shows one row per column, keyed by
    the first column — wide summaries with long, protocol-carrying column names stay readable."""
    d = df.head(max_rows).dropna(axis=1, how="all")
    if transpose is None:
        transpose = d.shape[1] > 8 and len(d) <= 12 and d.iloc[:, 0].is_unique
    if transpose:
        key = str(d.columns[0])
        d = d.set_index(d.columns[0]).T.reset_index()
        d.columns = [f"{key} →"] + [str(c) for c in d.columns[1:]]
    widths = [3 if transpose else 1.5] + [1] * (d.shape[1] - 1)
    fig = go.Figure(go.Table(header=dict(values=[str(c) for c in d.columns], fill_color="#dfe7f2", align="left"),
                             cells=dict(values=[[_fmt(v) for v in d[c]] for c in d.columns], align="left"),
                             columnwidth=widths, name="table"))
    fig.update_layout(title=title, height=min(1400, 140 + 30 * (len(d) + 2)))
    return fig


def table_html(df: pd.DataFrame, title: str, note: str = "") -> str:
    """An HTML section: heading, optional protocol note, and the table."""
    return (f"<h2>{html.escape(title)}</h2>\n" + (f"<p>{html.escape(note)}</p>\n" if note else "")
            + df.to_html(index=False, float_format=lambda x: f"{x:.4g}", border=0, classes="vlmkit") + "\n")
