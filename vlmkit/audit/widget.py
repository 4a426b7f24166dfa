"""The audit's review widget for JupyterLab (issue #23): the candidates of
:class:`vlmkit.audit.AuditResult` a page at a time, each with the image, the caption, the image it
was written for and every scorer's value (:func:`vlmkit.viz.review.candidate_row_html`), and
true / false / unsure buttons; every verdict is written at once (atomically) as
``decisions.json`` + ``extended_positives.json`` (:func:`vlmkit.audit.decisions.write_decisions`).
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from ..viz.gallery import Thumbs
from ..viz.review import candidate_row_html


class ReviewWidget:
    """Mark candidates true / false / unsure in JupyterLab; each verdict is saved at once into
    ``out_dir`` (``decisions.json`` and ``extended_positives.json``, :func:`vlmkit.audit.write_decisions`).

    ``mark(task, image, caption, verdict)`` does what a click does (for scripts and tests);
    ``verdict=""`` clears a mark.  ``widget`` is the ipywidgets box to display.
    """

    def __init__(self, ds: Any, tables: dict[str, pd.DataFrame], out_dir: str | os.PathLike, columns: Sequence[str],
                 *, per_page: int = 8, size: int = 80, include_existing: bool = True):
        self.ds, self.out_dir, self.columns = ds, Path(out_dir), list(columns)
        self.rows = [r for t in tables.values() for _, r in t.iterrows()]
        self.per_page, self.page, self.include_existing = max(1, int(per_page)), 0, include_existing
        self.decisions: dict[tuple[str, int, int], str] = {}
        self.thumbs = Thumbs(ds, size)
        self.paths: dict[str, Path] = {}
        self._widget: Any = None

    def records(self) -> list[dict]:
        return [{"task": t, "image": i, "caption": j, "verdict": v} for (t, i, j), v in self.decisions.items()]

    def mark(self, task: str, image: int, caption: int, verdict: str) -> dict[str, Path]:
        from .decisions import check_verdict, write_decisions

        key = (str(task), int(image), int(caption))
        if verdict in ("", None):
            self.decisions.pop(key, None)
        else:
            self.decisions[key] = check_verdict(verdict)
        self.paths = write_decisions(self.ds, self.records(), self.out_dir, self.include_existing)
        return self.paths

    @property
    def n_pages(self) -> int:
        return max(1, -(-len(self.rows) // self.per_page))

    def _row_widget(self, r: Any) -> Any:
        import ipywidgets as w

        key = (str(r["task"]), int(r["image"]), int(r["caption"]))
        card = w.HTML("<table class='vlmkit-review'>"
                      + candidate_row_html(self.ds, self.thumbs, r, self.columns, radios=False) + "</table>")
        toggle = w.ToggleButtons(options=[("—", ""), ("true", "true"), ("false", "false"), ("unsure", "unsure")],
                                 value=self.decisions.get(key, ""),
                                 description=f"{'FN' if key[0] == 'false_negative' else 'mismatch'} #{int(r['rank'])}",
                                 style={"button_width": "64px"})
        toggle.observe(lambda ch: self.mark(*key, ch["new"]), names="value")
        return w.VBox([card, toggle])

    def _render(self) -> None:
        rows = self.rows[self.page * self.per_page:(self.page + 1) * self.per_page]
        self._body.children = [self._row_widget(r) for r in rows]
        self._status.value = (f"page {self.page + 1} / {self.n_pages} · {len(self.decisions)} verdicts · saved to "
                              f"{html.escape(str(self.out_dir / 'decisions.json'))}")

    def go(self, page: int) -> None:
        self.page = min(max(0, int(page)), self.n_pages - 1)
        if self._widget is not None:
            self._render()

    @property
    def widget(self) -> Any:
        if self._widget is None:
            import ipywidgets as w

            prev, nxt = w.Button(description="◀ previous"), w.Button(description="next ▶")
            prev.on_click(lambda _: self.go(self.page - 1))
            nxt.on_click(lambda _: self.go(self.page + 1))
            self._status, self._body = w.HTML(), w.VBox()
            self._widget = w.VBox([w.HBox([prev, nxt, self._status]), self._body])
            self._render()
        return self._widget


def review_widget(ds: Any, tables: dict[str, pd.DataFrame], out_dir: str | os.PathLike, columns: Sequence[str],
                  **kwargs: Any) -> ReviewWidget:
    """A :class:`ReviewWidget` (display ``.widget`` in JupyterLab)."""
    return ReviewWidget(ds, tables, out_dir, columns, **kwargs)
