"""Saving figures: offline HTML (one shared ``plotly.min.js`` per folder) and PNG when possible.

PNG export needs kaleido and a Chromium; when either is missing, :func:`save_figure` prints
one note (once per process) and writes HTML only — it never raises for a missing exporter.
"""

from __future__ import annotations

import os
from pathlib import Path

import plotly.graph_objects as go

from ..utils import atomic_path, atomic_write_text

_PNG_STATE: dict[str, object] = {"ok": None, "note": ""}


def _ensure_plotlyjs(folder: Path) -> None:
    js = folder / "plotly.min.js"
    if not js.exists():
        from plotly.offline import get_plotlyjs

        atomic_write_text(js, get_plotlyjs())


def _find_chromium() -> str | None:
    for cand in (os.environ.get("BROWSER_PATH"), "/usr/bin/chromium", "/usr/bin/chromium-browser",
                 "/usr/bin/google-chrome"):
        if cand and Path(cand).exists():
            return cand
    return None


def png_available() -> bool:
    """Whether PNG export has worked (``None`` before the first try counts as maybe: True)."""
    return _PNG_STATE["ok"] is not False


def save_figure(fig: go.Figure, path_stem: str | os.PathLike, png: bool | None = None,
                width: int = 900, height: int = 600) -> dict[str, Path]:
    """Write ``<stem>.html`` (offline: loads ``plotly.min.js`` written beside it) and ``<stem>.png``.

    ``png=None`` tries PNG unless ``VLMKIT_NO_PNG=1``; a failed export is noted once and skipped.
    Returns the paths written.
    """
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    _ensure_plotlyjs(stem.parent)
    out: dict[str, Path] = {}
    html = stem.with_suffix(".html")
    atomic_write_text(html, fig.to_html(include_plotlyjs="directory", full_html=True))
    out["html"] = html
    if png is None:
        png = os.environ.get("VLMKIT_NO_PNG", "") in ("", "0")
    if png and _PNG_STATE["ok"] is not False:
        chrome = _find_chromium()
        if chrome and not os.environ.get("BROWSER_PATH"):
            os.environ["BROWSER_PATH"] = chrome
        try:
            target = stem.with_suffix(".png")
            with atomic_path(target) as tmp:
                fig.write_image(str(tmp), format="png", width=width, height=height)
            out["png"] = target
            _PNG_STATE["ok"] = True
        except Exception as exc:  # kaleido/Chromium missing or broken: HTML only
            _PNG_STATE["ok"] = False
            _PNG_STATE["note"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            print(f"note: PNG export unavailable ({_PNG_STATE['note'][:160]}); writing HTML figures only")
    return out
