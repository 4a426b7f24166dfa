"""Report tables as figures (plotly Table) and as HTML fragments."""

from __future__ import annotations

import html
import math

import pandas as pd
import plotly.graph_objects as go

from ..utils import VlmkitError


def _fmt(v) -> str:
    if isinstance(v, float):
        return "–" if v != v else f"{v:.4g}"
    return str(v)


def table_figure(df: pd.DataFrame, *, title: str, max_rows: int = 60, transpose: bool | None = None,
                 widths: list[float] | None = None) -> go.Figure:
    """A plotly table of ``df`` (first ``max_rows`` rows, all-empty columns dropped); the title
    must name the protocol. ``transpose`` (default: when there are more than 8 columns, at
    most 12 rows and the first column is a unique key) shows one row per column, keyed by
    the first column — wide summaries with long, protocol-carrying column names stay readable.
    ``widths``: relative column widths (default: the first column 1.5, or 3 transposed). The
    figure is as tall as its wrapped text (:func:`table_height`), so a PNG export shows every row."""
    d = df.head(max_rows).dropna(axis=1, how="all")
    if transpose is None:
        transpose = d.shape[1] > 8 and len(d) <= 12 and d.iloc[:, 0].is_unique
    if transpose:
        key = str(d.columns[0])
        d = d.set_index(d.columns[0]).T.reset_index()
        d.columns = [f"{key} →"] + [str(c) for c in d.columns[1:]]
    if widths is not None and len(widths) != d.shape[1]:
        raise VlmkitError(f"table_figure(widths=...): {len(widths)} widths for {d.shape[1]} columns {list(d.columns)}")
    widths = widths or [3 if transpose else 1.5] + [1] * (d.shape[1] - 1)
    cells = [[_fmt(v) for v in d[c]] for c in d.columns]
    fig = go.Figure(go.Table(header=dict(values=[str(c) for c in d.columns], fill_color="#dfe7f2", align="left"),
                             cells=dict(values=cells, align="left"), columnwidth=widths, name="table"))
    fig.update_layout(title=title, height=table_height(cells, widths))
    return fig


def table_height(cells: list[list[str]], widths: list[float], width_px: int = 800, char_px: float = 7.0,
                 line_px: int = 19, cap: int = 4000) -> int:
    """Figure height (px) that shows every row of a plotly table whose columns (``cells``, one
    list per column) wrap within ``width_px`` shared by relative ``widths``: per row, the most
    wrapped lines of any cell (``char_px`` per character) × ``line_px``, plus title and header."""
    per_char = [max(1.0, width_px * w / sum(widths) / char_px - 2) for w in widths]
    rows = len(cells[0]) if cells else 0
    lines = sum(max(math.ceil(len(str(col[r])) / n) for col, n in zip(cells, per_char)) for r in range(rows))
    return int(min(cap, 160 + line_px * lines + 10 * rows))


def table_html(df: pd.DataFrame, title: str, note: str = "") -> str:
    """An HTML section: heading, optional protocol note, and the table."""
    return (f"<h2>{html.escape(title)}</h2>\n" + (f"<p>{html.escape(note)}</p>\n" if note else "")
            + df.to_html(index=False, float_format=lambda x: f"{x:.4g}", border=0, classes="vlmkit") + "\n")
