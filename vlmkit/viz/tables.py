"""Report tables as figures (plotly Table) and as HTML fragments."""

from __future__ import annotations

import html

import pandas as pd
import plotly.graph_objects as go


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def table_figure(df: pd.DataFrame, *, title: str, max_rows: int = 60) -> go.Figure:
    """A plotly table of ``df`` (first ``max_rows`` rows); the title must name the protocol."""
    d = df.head(max_rows)
    fig = go.Figure(go.Table(header=dict(values=[str(c) for c in d.columns], fill_color="#dfe7f2", align="left"),
                             cells=dict(values=[[_fmt(v) for v in d[c]] for c in d.columns], align="left"),
                             name="table"))
    fig.update_layout(title=title, height=min(1400, 120 + 28 * (len(d) + 1)))
    return fig


def table_html(df: pd.DataFrame, title: str, note: str = "") -> str:
    """An HTML section: heading, optional protocol note, and the table."""
    return (f"<h2>{html.escape(title)}</h2>\n" + (f"<p>{html.escape(note)}</p>\n" if note else "")
            + df.to_html(index=False, float_format=lambda x: f"{x:.4g}", border=0, classes="vlmkit") + "\n")
