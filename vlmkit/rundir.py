"""Where things are: the source checkout, the workbook notebooks, and a run directory's ``run.json``.

This module is the one reader and writer of ``run.json`` and the one place that knows whether
vlmkit runs from a checkout.  It sits at the bottom of the package (it imports only
:mod:`vlmkit.utils`), so the runner (:mod:`vlmkit.cli`), the report, the claims ledger and the
run-directory helpers of :mod:`vlmkit.workbook` all read the same record without importing
one another.

``run.json`` (written by ``vlmkit run``, :func:`vlmkit.cli.run_chain`)::

    parameters      every parameter the notebooks received (merged over continued calls)
    grid_point      the grid values of this point of a ``--grid`` batch
    vlmkit_version, git_commit, python, started, finished
    status          "running", "ok" or "failed"
    notebooks       per executed notebook: status, seconds, error, warnings, skipped
    continued       one entry per ``--run-dir`` call that continued the run
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .utils import VlmkitError, atomic_write_json

if TYPE_CHECKING:
    import pandas as pd

CHECKOUT = Path(__file__).resolve().parent.parent
"""The repository root when vlmkit runs from a source checkout (see :func:`in_checkout`)."""
PACKAGED_NOTEBOOKS = Path(__file__).resolve().parent / "_notebooks"
"""The copy of the notebooks the wheel ships (filled by ``setup.py``)."""
NB_GLOB = "[0-9][0-9]_*.ipynb"
RUN_JSON = "run.json"
SUBDIRS = ("notebooks", "scores", "methods", "tables", "figures", "report")
"""The sub-folders of a run directory (the layout is described in :mod:`vlmkit.workbook`)."""


# --------------------------------------------------------------------------- the checkout


def in_checkout() -> bool:
    """True when vlmkit is imported from a source checkout (its ``notebooks/`` beside the package)."""
    return (CHECKOUT / "pyproject.toml").is_file() and any((CHECKOUT / "notebooks").glob(NB_GLOB))


def notebook_dir() -> Path:
    """Where the workbook notebooks are: the checkout's ``notebooks/`` first (what users edit),
    else the copy shipped inside the installed package (``vlmkit/_notebooks``)."""
    if in_checkout():
        return CHECKOUT / "notebooks"
    return PACKAGED_NOTEBOOKS


def notebooks(only: list[str] | None = None) -> list[Path]:
    """The numbered notebooks in order; ``only`` selects by number (``["00", "03"]``)."""
    folder = notebook_dir()
    nbs = sorted(folder.glob(NB_GLOB))
    if not nbs:
        raise VlmkitError(f"no notebooks found in {folder} (neither a checkout's notebooks/ nor an installed copy)")
    if only:
        missing = sorted(set(only) - {p.name[:2] for p in nbs})
        if missing:
            raise VlmkitError(f"--only {','.join(missing)}: no such notebook; there are "
                              f"{', '.join(p.name[:2] for p in nbs)}")
        nbs = [p for p in nbs if p.name[:2] in only]
    return nbs


def git_commit() -> str | None:
    """HEAD of the checkout vlmkit runs from; None for an installed copy (a virtualenv inside
    some other git repository must not report that repository's commit)."""
    if not in_checkout():
        return None
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=CHECKOUT, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except Exception:
        return None


# --------------------------------------------------------------------------- run directories


def prepare_run_dir(run_dir: str | os.PathLike) -> Path:
    """Create the run directory and its sub-folders (:data:`SUBDIRS`); returns the path."""
    p = Path(run_dir)
    for s in SUBDIRS:
        (p / s).mkdir(parents=True, exist_ok=True)
    return p


def new_run_dir(out: Path, name: str) -> Path:
    """Create ``out/name`` (or ``name-1``, ``name-2`` … when taken): ``mkdir`` claims it
    atomically, so two runs started in the same second never share a directory."""
    out.mkdir(parents=True, exist_ok=True)
    for k in range(10_000):
        run_dir = out / (name if k == 0 else f"{name}-{k}")
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            continue
    raise VlmkitError(f"{out}: could not create a new run directory named {name}-N")


def has_run_meta(run_dir: str | os.PathLike) -> bool:
    """Whether ``run_dir`` holds a ``run.json`` (it was made by ``vlmkit run``)."""
    return (Path(run_dir) / RUN_JSON).is_file()


def read_run_meta(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The ``run.json`` of ``run_dir`` as a dict; ``{}`` when there is none (notebooks run by
    hand).  A file that is not a JSON object raises a ``VlmkitError`` naming it."""
    p = Path(run_dir) / RUN_JSON
    if not p.is_file():
        return {}
    try:
        meta = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise VlmkitError(f"{p}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise VlmkitError(f"{p}: expected a JSON object, got {type(meta).__name__}")
    return meta


def write_run_meta(run_dir: str | os.PathLike, meta: dict[str, Any]) -> Path:
    """Write ``run_dir/run.json`` atomically (a reader sees the old or the new record)."""
    path = Path(run_dir) / RUN_JSON
    atomic_write_json(path, meta)
    return path


def warnings_table(run_dir: str | os.PathLike) -> "pd.DataFrame":
    """The warnings ``vlmkit run`` recorded in ``run_dir/run.json``: one row per notebook and
    distinct (category, message), columns notebook, category, message, count, where.
    Empty (with those columns) when nothing was warned or the run was not headless."""
    import pandas as pd

    meta = read_run_meta(run_dir)
    rows = [{"notebook": name, **w} for name, nb in meta.get("notebooks", {}).items() for w in nb.get("warnings", [])]
    return pd.DataFrame(rows, columns=["notebook", "category", "message", "count", "where"])


def skipped_table(run_dir: str | os.PathLike) -> "pd.DataFrame":
    """The dataset skips recorded in ``run_dir/run.json`` (``vlmkit.kernel.record_skipped``):
    one row per notebook, dataset and role, columns notebook, dataset, role, count, first
    (``where: reason`` of the first item left out)."""
    import pandas as pd

    meta = read_run_meta(run_dir)
    rows = [{"notebook": name, "dataset": sk["dataset"], "role": sk["role"], "count": sk["count"],
             "first": f"{sk['items'][0]['where']}: {sk['items'][0]['reason']}" if sk.get("items") else ""}
            for name, nb in meta.get("notebooks", {}).items() for sk in nb.get("skipped", [])]
    return pd.DataFrame(rows, columns=["notebook", "dataset", "role", "count", "first"])
