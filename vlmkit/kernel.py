"""The Jupyter kernel that ``vlmkit run`` executes notebooks in, and what it records.

``ensure_kernel()`` writes a kernel spec that runs *this* interpreter (so papermill uses the
virtualenv's packages) as ``python -m vlmkit.kernel``: an ordinary ipykernel that also
records every warning the notebook *displays*.  The spec's name carries a hash of the
interpreter, so two virtualenvs sharing one ``$VLMKIT_CACHE`` never overwrite each other's
spec, and ``kernel.json`` is written atomically (a concurrent reader sees the old or the new
file, never a half-written one).

Protocol: the runner points ``$VLMKIT_WARNINGS_LOG`` at a fresh file before starting a
notebook's kernel; the kernel appends one JSON line per event, and after the notebook the
runner folds the file into ``run.json`` (``notebooks.<name>.warnings`` / ``.skipped``).

* Warnings: the kernel wraps ``warnings.showwarning`` and logs each displayed warning
  (category, message, file, line), then shows it as usual.  Nothing is silenced and the
  filters are left alone, so a count is the number of times Python *displayed* the
  warning: under the default filters a warning repeated with the same text from the same
  line is displayed (and counted) once; ``warnings.simplefilter("always")`` in a notebook
  makes every occurrence count.  A notebook needs nothing for this beyond not ignoring
  warnings.
* Dataset skips: a notebook calls ``record_skipped(ds, "test")`` after loading a dataset;
  what ``ds.skipped`` lists (problems skipped with ``on_error="skip"`` and the items a
  loader leaves out by design, which are not warned about) is logged.  Outside
  ``vlmkit run`` (no log) it does nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any

LOG_ENV = "VLMKIT_WARNINGS_LOG"
MAX_MESSAGE = 2000  # characters of a warning message kept in run.json
MAX_DISTINCT = 200  # distinct (category, message) entries kept per notebook
MAX_SKIP_ITEMS = 20  # skipped items listed per dataset (the count covers all)


def kernel_name(executable: str | None = None, prefix: str | None = None) -> str:
    """``vlmkit-<10 hex>``: one kernel name per interpreter (hash of ``sys.prefix`` and
    ``sys.executable``), so each virtualenv has its own spec in the shared cache."""
    key = f"{prefix or sys.prefix}\n{executable or sys.executable}"
    return "vlmkit-" + hashlib.sha256(key.encode()).hexdigest()[:10]


def ensure_kernel(root: str | os.PathLike | None = None) -> str:
    """Write (atomically) the kernel spec of this interpreter under ``root/kernels/<name>``
    (default ``$VLMKIT_CACHE/jupyter``), put ``root`` on ``$JUPYTER_PATH`` of this process
    and return the kernel name to pass to papermill."""
    if root is None:
        from .workbook import default_cache_dir

        root = default_cache_dir() / "jupyter"
    from .utils import atomic_write_json  # imported here: the kernel itself starts without torch

    root = Path(root)
    name = kernel_name()
    spec = {"argv": [sys.executable, "-m", "vlmkit.kernel", "-f", "{connection_file}"],
            "display_name": f"vlmkit ({sys.prefix})", "language": "python",
            "metadata": {"vlmkit_prefix": sys.prefix}}
    path = root / "kernels" / name / "kernel.json"
    try:
        current = json.loads(path.read_text())
    except (OSError, ValueError):
        current = None
    if current != spec:
        atomic_write_json(path, spec)
    paths = os.environ.get("JUPYTER_PATH", "")
    if str(root) not in paths.split(os.pathsep):
        os.environ["JUPYTER_PATH"] = os.pathsep.join([str(root)] + ([paths] if paths else []))
    return name


def quiet_kernel_manager() -> type:
    """The kernel manager ``vlmkit run`` hands papermill: jupyter_client's ``AsyncKernelManager``
    less the SIGINT it sends before every shutdown request.  papermill shuts a kernel down only
    after the notebook's last reply (every cell done or one failed), so the interrupt has nothing
    to stop; when it lands while the kernel is still finishing a message it logs
    ``[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel.`` into a successful run's log.
    An explicit interrupt (``interrupt_kernel()`` outside a shutdown) still signals."""
    from jupyter_client import AsyncKernelManager

    class QuietShutdownKernelManager(AsyncKernelManager):
        async def _async_interrupt_kernel(self) -> None:
            if getattr(self, "shutting_down", False):
                return  # the shutdown request follows; a kernel that does not obey it is terminated as usual
            await super()._async_interrupt_kernel()

        interrupt_kernel = _async_interrupt_kernel

    return QuietShutdownKernelManager


def install_recorder(log: str | os.PathLike) -> None:
    """Wrap ``warnings.showwarning`` so that every displayed warning is also appended to
    ``log`` as one JSON line, then displayed as before."""
    shown = warnings.showwarning
    log = str(log)

    def record(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001 (warnings' signature)
        try:
            _append(log, {"kind": "warning", "category": getattr(category, "__name__", str(category)),
                          "message": str(message)[:MAX_MESSAGE], "filename": str(filename), "lineno": lineno})
        except Exception:  # recording must never break the notebook
            pass
        return shown(message, category, filename, lineno, file, line)

    warnings.showwarning = record


def _append(log: str, entry: dict[str, Any]) -> None:
    with open(log, "a", encoding="utf-8") as fh:  # one short append per event
        fh.write(json.dumps(entry, default=str) + "\n")


def record_skipped(dataset: Any, role: str) -> int:
    """Log what ``dataset.skipped`` lists (count, and the first ``MAX_SKIP_ITEMS`` as
    where/reason) under ``role`` (e.g. ``"test"``, ``"train"``) for this notebook's entry in
    ``run.json``; returns the count.  Does nothing but count outside ``vlmkit run``."""
    skipped = list(getattr(dataset, "skipped", None) or [])
    log = os.environ.get(LOG_ENV)
    if log and skipped:
        items = [{"where": str(getattr(r, "where", r)), "reason": str(getattr(r, "reason", ""))}
                 for r in skipped[:MAX_SKIP_ITEMS]]
        _append(log, {"kind": "skipped", "dataset": str(getattr(dataset, "name", "?")), "role": role,
                      "count": len(skipped), "items": items})
    return len(skipped)


def _entries(log: str | os.PathLike, kind: str) -> list[dict[str, Any]]:
    path = Path(log)
    if not path.is_file():
        return []
    out = []
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            e = json.loads(raw)
        except ValueError:  # a line cut short by a killed kernel
            continue
        if e.get("kind", "warning") == kind:
            out.append(e)
    return out


def summarise_skipped(log: str | os.PathLike) -> list[dict[str, Any]]:
    """The ``record_skipped`` entries of a log: ``[{dataset, role, count, items}]`` in order
    (a dataset recorded twice under one role keeps its last entry)."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for e in _entries(log, "skipped"):
        latest[(e.get("dataset", "?"), e.get("role", ""))] = {k: e.get(k)
                                                               for k in ("dataset", "role", "count", "items")}
    return list(latest.values())


def summarise_warnings(log: str | os.PathLike) -> list[dict[str, Any]]:
    """Group a warnings log by (category, message): ``[{category, message, count, where}]``
    in order of first appearance (``where`` = file:line of the first one). Beyond
    ``MAX_DISTINCT`` entries the rest are folded into one ``"…"`` entry."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for e in _entries(log, "warning"):
        key = (e.get("category", "?"), e.get("message", ""))
        if key in groups:
            groups[key]["count"] += 1
        else:
            groups[key] = {"category": key[0], "message": key[1], "count": 1,
                           "where": f"{e.get('filename')}:{e.get('lineno')}"}
    out = list(groups.values())
    if len(out) > MAX_DISTINCT:
        rest = out[MAX_DISTINCT:]
        out = out[:MAX_DISTINCT] + [{"category": "…", "message": f"{len(rest)} more distinct warnings",
                                     "count": sum(r["count"] for r in rest), "where": ""}]
    return out


def _drop_tcp_notice(record: logging.LogRecord) -> bool:
    return not str(record.getMessage()).startswith("Kernel is running over TCP without encryption")


def main() -> None:
    """``python -m vlmkit.kernel -f CONNECTION_FILE``: ipykernel, recording warnings when
    ``$VLMKIT_WARNINGS_LOG`` is set."""
    if sys.path and (sys.path[0] == "" or Path(sys.path[0]) == Path.cwd()):
        del sys.path[0]  # as ipykernel_launcher: no imports from the notebook's folder while starting
    log = os.environ.get(LOG_ENV)
    if log:
        install_recorder(log)
        # under `vlmkit run` papermill starts the kernel on localhost itself; ipykernel ≥ 7 still
        # logs its "running over TCP without encryption" notice once per notebook into the run's log
        logging.getLogger("IPKernelApp").addFilter(_drop_tcp_notice)
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


if __name__ == "__main__":
    main()
