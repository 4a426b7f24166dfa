"""``vlmkit run``: execute the numbered notebooks through papermill into a run directory.

    vlmkit run [--config params.yaml] [-p key value ...] [--out runs/] [--quick]
               [--grid seeds=0,1 noise_ratio=0,0.2 methods=contrastive+m2mix,sigmoid]
               [--only 00,01,...] [--run-dir runs/EXISTING]

Each run gets ``<out>/<timestamp>[-<grid point>]/`` with the executed notebooks, figures,
tables, the report and ``run.json``.  A grid runs every combination (``seeds`` is an alias
of ``seed``; inside a grid value ``+`` separates list items) and ends with
``<out>/batch-<timestamp>/summary.csv`` and ``report.html`` (one comparison page across the grid
points: ``vlmkit.report.build_grid_report``).  Exit code 1 if any run failed, 2 for bad
arguments — among them a parameter that no notebook's ``parameters`` cell declares
(papermill's inspection of the notebooks is the one list of known parameters).

The notebooks come from the checkout's ``notebooks/`` when vlmkit runs from one, else from
the copy the wheel ships in ``vlmkit/_notebooks`` (see ``setup.py``).  Warnings are never
silenced: each notebook's displayed warnings are recorded in ``run.json`` (``vlmkit.kernel``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .kernel import ensure_kernel  # noqa: F401 (re-exported: vlmkit.cli.ensure_kernel)
from .recipes import RECIPES
from .utils import VlmkitError, atomic_to_csv, atomic_write_json

if TYPE_CHECKING:
    import pandas as pd

CHECKOUT = Path(__file__).resolve().parent.parent  # the repository root when running from a checkout
PACKAGED_NOTEBOOKS = Path(__file__).resolve().parent / "_notebooks"  # filled by the wheel build (setup.py)
NB_GLOB = "[0-9][0-9]_*.ipynb"
INTERNAL = {"run_dir": "set by vlmkit run (use --run-dir to continue a run, --out for the parent folder)",
            "quick": "set by --quick"}

QUICK = {"test_images": 60, **RECIPES["quick"].notebook_params(),  # the quick recipe's fine-tuning sizes
         "vacsr_epochs": 2,
         "projection": "pca", "max_points": 300, "methods": ["contrastive", "m2mix"], "primer_steps": 40,
         "quick": True}
ALIASES = {"seeds": "seed", "noise_ratios": "noise_ratio"}


def _value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_grid(items: list[str]) -> list[dict[str, Any]]:
    """``["seeds=0,1", "noise_ratio=0,0.2"]`` → every combination as a dict (aliases resolved)."""
    axes: list[tuple[str, list[Any]]] = []
    for it in items:
        if "=" not in it:
            raise VlmkitError(f"--grid item {it!r}: expected key=v1,v2,...")
        k, vs = it.split("=", 1)
        k = ALIASES.get(k.strip(), k.strip())
        vals = [v for v in vs.split(",") if v != ""]
        if not vals:
            raise VlmkitError(f"--grid {k}: no values")
        if k == "methods":
            axes.append((k, [v.split("+") for v in vals]))
        else:
            axes.append((k, [_value(v) for v in vals]))
    if not axes:
        return [{}]
    return [dict(zip([a[0] for a in axes], combo)) for combo in itertools.product(*[a[1] for a in axes])]


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
            raise VlmkitError(f"--only {','.join(missing)}: no such notebook; there are {', '.join(p.name[:2] for p in nbs)}")
        nbs = [p for p in nbs if p.name[:2] in only]
    return nbs


def declared_parameters(nbs: list[Path] | None = None) -> dict[str, list[str]]:
    """Parameter name → the notebooks (stems) whose ``parameters`` cell declares it, as
    papermill itself inspects them (``run_dir`` and the other internal names left out)."""
    import papermill as pm

    out: dict[str, list[str]] = {}
    for nb in nbs if nbs is not None else notebooks():
        for name in pm.inspect_notebook(str(nb)):
            if name not in INTERNAL:
                out.setdefault(name, []).append(nb.stem)
    return dict(sorted(out.items()))


def check_parameters(given: dict[str, str], declared: dict[str, list[str]]) -> None:
    """Raise a ``VlmkitError`` for the first key of ``given`` (key → where it came from) that no
    notebook declares: it names the key and its source, suggests the closest known name and
    lists every known parameter with its notebooks."""
    import difflib

    for key, source in given.items():
        if key in declared:
            continue
        if key in INTERNAL:
            raise VlmkitError(f"parameter {key!r} ({source}) is {INTERNAL[key]}")
        close = difflib.get_close_matches(key, list(declared), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        width = max(map(len, declared), default=0)
        known = "\n".join(f"  {k:<{width}}  {', '.join(v)}" for k, v in declared.items())
        raise VlmkitError(f"unknown parameter {key!r} ({source}){hint}\n"
                          f"known parameters (and the notebooks that declare them):\n{known}")


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


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("vlmkit")
    except Exception:
        return "unknown"


def _report_warnings(run_name: str, nb_name: str, found: list[dict[str, Any]], skipped: list[dict[str, Any]]) -> None:
    """Print a notebook's warnings (grouped) and dataset skips to stderr, one line each."""
    for w in found:
        msg = w["message"] if len(w["message"]) <= 300 else w["message"][:300] + "…"
        times = f" (×{w['count']})" if w["count"] > 1 else ""
        print(f"[{run_name}] {nb_name} warning{times}: {w['category']}: {msg}", file=sys.stderr, flush=True)
    for sk in skipped:
        first = sk["items"][0] if sk.get("items") else {"where": "?", "reason": "?"}
        print(f"[{run_name}] {nb_name} {sk['role']} data {sk['dataset']}: {sk['count']} item(s) left out; "
              f"first: {first['where']}: {first['reason']} (all in run.json)", file=sys.stderr, flush=True)


def run_chain(run_dir: Path, params: dict[str, Any], grid_point: dict[str, Any], only: list[str] | None = None) -> bool:
    """Execute the notebooks in order into ``run_dir``; stop at the first failure. Returns success.

    Continuing a run (``run.json`` exists): the parameters recorded there, updated by
    ``params``, are what the notebooks receive and what ``run.json`` records; each call is
    listed under ``continued``.  Every notebook's displayed warnings and the dataset skips it
    recorded (see ``vlmkit.kernel``) are stored under ``notebooks.<name>.warnings``
    (``[{category, message, count, where}]``) and ``.skipped`` (``[{dataset, role, count,
    items}]``) and printed to stderr.
    """
    import tempfile

    import papermill as pm

    from .kernel import LOG_ENV, summarise_skipped, summarise_warnings
    from .workbook import prepare_run_dir

    prepare_run_dir(run_dir)
    kernel = ensure_kernel()
    now = dt.datetime.now().isoformat(timespec="seconds")
    meta = {"parameters": params, "grid_point": grid_point, "vlmkit_version": _version(), "git_commit": git_commit(),
            "python": sys.executable, "started": now, "notebooks": {}, "status": "running"}
    if (run_dir / "run.json").is_file():  # continuing a run: keep what earlier notebooks recorded
        old = json.loads((run_dir / "run.json").read_text())
        meta["parameters"] = {**old.get("parameters", {}), **params}
        meta["grid_point"] = {**old.get("grid_point", {}), **grid_point}
        meta["notebooks"] = old.get("notebooks", {})
        meta["continued"] = old.get("continued", []) + [{"at": now, "git_commit": meta["git_commit"], "parameters": params}]
        meta["started"] = old.get("started", now)
    merged = meta["parameters"]
    atomic_write_json(run_dir / "run.json", meta)
    ok = True
    for nb in notebooks(only):
        declared = set(pm.inspect_notebook(str(nb)).keys())
        p = {k: v for k, v in merged.items() if k in declared}
        p["run_dir"] = str(run_dir.resolve())
        out = run_dir / "notebooks" / nb.name
        fd, log = tempfile.mkstemp(prefix=f".{nb.stem}.", suffix=".warnings.jsonl", dir=run_dir / "notebooks")
        os.close(fd)
        os.environ[LOG_ENV] = log  # the kernel started below inherits it
        t0 = time.time()
        try:
            pm.execute_notebook(str(nb), str(out), parameters=p, kernel_name=kernel, progress_bar=False,
                                log_output=False, cwd=str(run_dir))
            entry = {"status": "ok", "seconds": round(time.time() - t0, 1)}
            print(f"[{run_dir.name}] {nb.name} ok ({time.time() - t0:.0f} s)", flush=True)
        except pm.PapermillExecutionError as exc:
            msg = f"notebook {nb.name} failed in cell {exc.cell_index} (execution {exc.exec_count}): {exc.ename}: {exc.evalue}"
            entry = {"status": "failed", "seconds": round(time.time() - t0, 1), "error": msg}
            print(f"[{run_dir.name}] {msg}\n  executed notebook kept at {out}", file=sys.stderr, flush=True)
            ok = False
        except Exception as exc:  # kernel died, bad notebook file, ...
            msg = f"notebook {nb.name} could not run: {type(exc).__name__}: {exc}"
            entry = {"status": "failed", "seconds": round(time.time() - t0, 1), "error": msg}
            print(f"[{run_dir.name}] {msg}", file=sys.stderr, flush=True)
            ok = False
        finally:
            os.environ.pop(LOG_ENV, None)
        entry["warnings"], entry["skipped"] = summarise_warnings(log), summarise_skipped(log)
        Path(log).unlink(missing_ok=True)
        _report_warnings(run_dir.name, nb.name, entry["warnings"], entry["skipped"])
        meta["notebooks"][nb.name] = entry
        atomic_write_json(run_dir / "run.json", meta)
        if not ok:
            break
    meta["status"] = "ok" if ok else "failed"
    meta["finished"] = dt.datetime.now().isoformat(timespec="seconds")
    atomic_write_json(run_dir / "run.json", meta)
    return ok


def warnings_table(run_dir: str | os.PathLike) -> "pd.DataFrame":
    """The warnings ``vlmkit run`` recorded in ``run_dir/run.json``: one row per notebook and
    distinct (category, message), columns notebook, category, message, count, where.
    Empty (with those columns) when nothing was warned or the run was not headless."""
    import pandas as pd

    path = Path(run_dir) / "run.json"
    meta = json.loads(path.read_text()) if path.is_file() else {}
    rows = [{"notebook": name, **w} for name, nb in meta.get("notebooks", {}).items() for w in nb.get("warnings", [])]
    return pd.DataFrame(rows, columns=["notebook", "category", "message", "count", "where"])


def skipped_table(run_dir: str | os.PathLike) -> "pd.DataFrame":
    """The dataset skips recorded in ``run_dir/run.json`` (``vlmkit.kernel.record_skipped``):
    one row per notebook, dataset and role, columns notebook, dataset, role, count, first
    (``where: reason`` of the first item left out)."""
    import pandas as pd

    path = Path(run_dir) / "run.json"
    meta = json.loads(path.read_text()) if path.is_file() else {}
    rows = [{"notebook": name, "dataset": sk["dataset"], "role": sk["role"], "count": sk["count"],
             "first": f"{sk['items'][0]['where']}: {sk['items'][0]['reason']}" if sk.get("items") else ""}
            for name, nb in meta.get("notebooks", {}).items() for sk in nb.get("skipped", [])]
    return pd.DataFrame(rows, columns=["notebook", "dataset", "role", "count", "first"])


def _tag(point: dict[str, Any]) -> str:
    parts = []
    for k, v in point.items():
        v = "+".join(map(str, v)) if isinstance(v, list) else str(v)
        parts.append(f"{k}{v}")
    return "".join(ch if ch.isalnum() or ch in "-_.+" else "_" for ch in "-".join(parts))


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


def _read_config(path: str) -> dict[str, Any]:
    try:
        cfg = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise VlmkitError(f"--config {path}: cannot read it ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise VlmkitError(f"--config {path}: not valid YAML: {exc}") from None
    if not isinstance(cfg, dict):
        raise VlmkitError(f"{path}: expected a mapping of parameter: value")
    return cfg


def cmd_run(args: argparse.Namespace) -> int:
    """Collect the parameters (``--quick`` < ``--config`` < ``-p`` < ``--grid``), reject any that
    no notebook declares, then run every grid point (or continue ``--run-dir``)."""
    params: dict[str, Any] = dict(QUICK) if args.quick else {}
    given: dict[str, str] = {}  # user-supplied key → where it came from (for error messages)
    if args.config:
        for k, v in _read_config(args.config).items():
            params[ALIASES.get(str(k), str(k))] = v
            given[ALIASES.get(str(k), str(k))] = f"from --config {args.config}"
    for k, v in args.param or []:
        params[ALIASES.get(k, k)] = _value(v)
        given[ALIASES.get(k, k)] = "from -p"
    if isinstance(params.get("methods"), str):
        params["methods"] = [m for m in params["methods"].replace("+", ",").split(",") if m]
    grid = parse_grid(args.grid or [])
    for k in grid[0]:
        given.setdefault(k, "from --grid")
    only = [s.strip()[:2] for s in args.only.split(",")] if args.only else None
    declared = declared_parameters()
    check_parameters(given, declared)
    selected = {nb.stem for nb in notebooks(only)}
    for k in given:
        if not selected & set(declared[k]):
            print(f"vlmkit: note: {k} is declared only by {', '.join(declared[k])}, which this call does not run "
                  "(recorded in run.json all the same)", file=sys.stderr)
    out = Path(args.out)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    os.environ.setdefault("VLMKIT_HEADLESS", "1")
    os.environ.setdefault("VLMKIT_PROGRESS_INTERVAL", "30")
    if args.run_dir and len(grid) > 1:
        raise VlmkitError("--run-dir continues one existing run; it cannot be combined with a --grid of several points")
    run_dirs, failed = [], 0
    for point in grid:
        name = stamp + (f"-{_tag(point)}" if point else "")
        if args.run_dir:
            run_dir = Path(args.run_dir)
            if not (run_dir / "run.json").is_file():
                raise VlmkitError(f"--run-dir {run_dir}: not a run directory (no run.json)")
        else:
            run_dir = new_run_dir(out, name)
        run_dirs.append(run_dir)
        print(f"run {run_dir}", flush=True)
        if not run_chain(run_dir, {**params, **point}, point, only):
            failed += 1
    if len(grid) > 1:
        from .report import build_grid_report
        from .workbook import summarise_runs

        batch = out / f"batch-{stamp}"
        batch.mkdir(parents=True, exist_ok=True)
        summ = summarise_runs(run_dirs)
        atomic_to_csv(summ, batch / "summary.csv")
        page = build_grid_report(run_dirs, batch / "report.html")
        print(f"batch summary: {batch / 'summary.csv'} ({len(summ)} rows; {failed} of {len(grid)} runs failed); comparison page: {page}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vlmkit", description="vlmkit workbook runner")
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the numbered notebooks through papermill into a run directory")
    r.add_argument("--config", help="YAML file of notebook parameters")
    r.add_argument("-p", "--param", nargs=2, action="append", metavar=("KEY", "VALUE"), help="one parameter (YAML value)")
    r.add_argument("--out", default="runs", help="parent folder of run directories (default runs/)")
    r.add_argument("--grid", nargs="+", metavar="KEY=V1,V2", help="batch over every combination")
    r.add_argument("--quick", action="store_true", help="tiny sizes for CI (a few minutes on 2 CPU cores)")
    r.add_argument("--only", help="comma-separated notebook numbers to run (e.g. 00,01)")
    r.add_argument("--run-dir", help="continue an existing run directory (e.g. rerun --only 03,08 there) instead of a new one")
    from .claims.__main__ import add_arguments as claims_arguments, cmd_claims

    claims_arguments(sub.add_parser("claims", help="the claims ledger: re-test every headline claim, write docs/results.md"))
    args = ap.parse_args(argv)
    try:
        if args.command == "claims":
            return cmd_claims(args, argv)
        return cmd_run(args)
    except VlmkitError as exc:
        print(f"vlmkit: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
