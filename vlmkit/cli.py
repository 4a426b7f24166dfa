"""``vlmkit run``: execute the numbered notebooks through papermill into a run directory.

    vlmkit run [--config params.yaml] [-p key value ...] [--out runs/] [--quick]
               [--grid seeds=0,1 noise_ratio=0,0.2 methods=contrastive+m2mix,sigmoid]
               [--only 00,01,...] [--run-dir runs/EXISTING]
    vlmkit export RUN_DIR [--out DIR]     (vlmkit.export: embeddings in clip-retrieval's layout)

Each run gets ``<out>/<timestamp>[-<grid point>]/`` with the executed notebooks, figures,
tables, the report and ``run.json``.  A grid runs every combination (``seeds`` is an alias
of ``seed``; inside a grid value ``+`` separates list items) and ends with
``<out>/batch-<timestamp>/summary.csv`` and ``report.html`` (one comparison page across the grid
points, aggregated over seeds: ``vlmkit.batch``).  Exit code 1 if any run failed, 2 for bad
arguments — among them a parameter that no notebook's ``parameters`` cell declares
(papermill's inspection of the notebooks is the one list of known parameters).

The notebooks come from the checkout's ``notebooks/`` when vlmkit runs from one, else from
the copy the wheel ships in ``vlmkit/_notebooks`` (see ``setup.py``; :mod:`vlmkit.rundir`
finds them and reads and writes ``run.json``).  Warnings are never silenced: each notebook's
displayed warnings are recorded in ``run.json`` (``vlmkit.kernel``).  Nothing in the package
imports this module (``tests/test_layers.py``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from .kernel import ensure_kernel  # noqa: F401 (re-exported: vlmkit.cli.ensure_kernel)
from .recipes import RECIPES
from .rundir import git_commit, has_run_meta, new_run_dir, notebooks, prepare_run_dir, read_run_meta, write_run_meta
from .utils import VlmkitError, atomic_to_csv

INTERNAL = {"run_dir": "set by vlmkit run (use --run-dir to continue a run, --out for the parent folder)",
            "quick": "set by --quick"}

QUICK = {"test_images": 60, **RECIPES["quick"].notebook_params(),  # the quick recipe's fine-tuning and VACSR sizes
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


def run_chain(run_dir: Path, params: dict[str, Any], grid_point: dict[str, Any], only: list[str] | None = None,
              nbs: list[Path] | None = None) -> bool:
    """Execute the notebooks in order into ``run_dir``; stop at the first failure. Returns success.
    ``nbs``: the notebook files to run (default ``notebooks(only)``; ``--jobs`` hands its worker
    processes the list the parent resolved).

    Continuing a run (``run.json`` exists): the parameters recorded there, updated by
    ``params``, are what the notebooks receive and what ``run.json`` records; each call is
    listed under ``continued``.  Every notebook's displayed warnings and the dataset skips it
    recorded (see ``vlmkit.kernel``) are stored under ``notebooks.<name>.warnings``
    (``[{category, message, count, where}]``) and ``.skipped`` (``[{dataset, role, count,
    items}]``) and printed to stderr.
    """
    import tempfile

    import papermill as pm

    from .kernel import LOG_ENV, quiet_kernel_manager, summarise_skipped, summarise_warnings

    prepare_run_dir(run_dir)
    kernel = ensure_kernel()
    now = dt.datetime.now().isoformat(timespec="seconds")
    meta = {"parameters": params, "grid_point": grid_point, "vlmkit_version": _version(), "git_commit": git_commit(),
            "python": sys.executable, "started": now, "notebooks": {}, "status": "running"}
    if has_run_meta(run_dir):  # continuing a run: keep what earlier notebooks recorded
        old = read_run_meta(run_dir)
        meta["parameters"] = {**old.get("parameters", {}), **params}
        meta["grid_point"] = {**old.get("grid_point", {}), **grid_point}
        meta["notebooks"] = old.get("notebooks", {})
        meta["continued"] = old.get("continued", []) + [{"at": now, "git_commit": meta["git_commit"],
                                                         "parameters": params}]
        meta["started"] = old.get("started", now)
    merged = meta["parameters"]
    write_run_meta(run_dir, meta)
    ok = True
    for nb in nbs if nbs is not None else notebooks(only):
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
                                log_output=False, cwd=str(run_dir), kernel_manager_class=quiet_kernel_manager())
            entry = {"status": "ok", "seconds": round(time.time() - t0, 1)}
            print(f"[{run_dir.name}] {nb.name} ok ({time.time() - t0:.0f} s)", flush=True)
        except pm.PapermillExecutionError as exc:
            msg = (f"notebook {nb.name} failed in cell {exc.cell_index} (execution {exc.exec_count}): "
                   f"{exc.ename}: {exc.evalue}")
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
        write_run_meta(run_dir, meta)
        if not ok:
            break
    meta["status"] = "ok" if ok else "failed"
    meta["finished"] = dt.datetime.now().isoformat(timespec="seconds")
    write_run_meta(run_dir, meta)
    return ok


def _worker_init(threads: str | None) -> None:
    """A ``--jobs`` worker: its kernels get ``threads`` BLAS/OpenMP threads unless the caller set
    ``OMP_NUM_THREADS`` (the cores shared among the jobs)."""
    if threads is not None:
        os.environ["OMP_NUM_THREADS"] = threads


def _run_points(jobs: list[tuple[Path, dict[str, Any], dict[str, Any]]], only: list[str] | None,
                workers: int) -> list[bool]:
    """``run_chain`` of every (run_dir, params, grid point) in ``jobs``: one after the other, or
    with ``workers`` > 1 that many grid points at once, each chain in its own process (spawned:
    its own environment, kernels and ``$VLMKIT_WARNINGS_LOG``; the chains share only the cache,
    whose files are written atomically; each gets the notebook files resolved here).  Returns
    each point's success, in the order given."""
    if workers <= 1 or len(jobs) <= 1:
        oks = []
        for run_dir, params, point in jobs:
            print(f"run {run_dir}", flush=True)
            oks.append(run_chain(run_dir, params, point, only))
        return oks
    nbs = notebooks(only)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    workers = min(workers, len(jobs))
    threads = None if os.environ.get("OMP_NUM_THREADS") else str(max(1, (os.cpu_count() or 1) // workers))
    for run_dir, _, _ in jobs:
        print(f"run {run_dir}", flush=True)
    print(f"running {len(jobs)} grid points, {workers} at a time (--jobs)", flush=True)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init,
                             initargs=(threads,)) as pool:
        futures = [pool.submit(run_chain, run_dir, params, point, None, nbs) for run_dir, params, point in jobs]
        return [f.result() for f in futures]


def _tag(point: dict[str, Any]) -> str:
    parts = []
    for k, v in point.items():
        v = "+".join(map(str, v)) if isinstance(v, list) else str(v)
        parts.append(f"{k}{v}")
    return "".join(ch if ch.isalnum() or ch in "-_.+" else "_" for ch in "-".join(parts))


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
    raw: dict[str, str] = {}  # the text typed after -p KEY
    if args.config:
        for k, v in _read_config(args.config).items():
            params[ALIASES.get(str(k), str(k))] = v
            given[ALIASES.get(str(k), str(k))] = f"from --config {args.config}"
    for k, v in args.param or []:
        params[ALIASES.get(k, k)] = _value(v)
        given[ALIASES.get(k, k)] = "from -p"
        raw[ALIASES.get(k, k)] = v
    if isinstance(params.get("methods"), str):
        params["methods"] = [m for m in params["methods"].replace("+", ",").split(",") if m]
    grid = parse_grid(args.grid or [])
    for k in grid[0]:
        given.setdefault(k, "from --grid")
    only = [s.strip()[:2] for s in args.only.split(",")] if args.only else None
    declared = declared_parameters()
    check_parameters(given, declared)
    from .parameters import coerce_all, declared_types  # each value as the type its notebook declares

    types = declared_types(notebooks())
    params = coerce_all(params, types, given, raw)
    grid = [coerce_all(point, types, given) for point in grid]
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
    if args.jobs < 1:
        raise VlmkitError(f"--jobs {args.jobs}: expected the number of grid points to run at once, an integer ≥ 1")
    run_dirs = []
    for point in grid:
        name = stamp + (f"-{_tag(point)}" if point else "")
        if args.run_dir:
            run_dir = Path(args.run_dir)
            if not has_run_meta(run_dir):
                raise VlmkitError(f"--run-dir {run_dir}: not a run directory (no run.json)")
        else:
            run_dir = new_run_dir(out, name)
        run_dirs.append(run_dir)
    oks = _run_points([(d, {**params, **point}, point) for d, point in zip(run_dirs, grid)], only, args.jobs)
    failed = oks.count(False)
    if len(grid) > 1:
        from .batch import write_batch
        from .workbook import summarise_runs

        batch = out / f"batch-{stamp}"
        batch.mkdir(parents=True, exist_ok=True)
        summ = summarise_runs(run_dirs)
        atomic_to_csv(summ, batch / "summary.csv")
        page = write_batch(batch, run_dirs)  # summary_by_seed.csv, figures/ and report.html (vlmkit.batch)
        print(f"batch summary: {batch / 'summary.csv'} ({len(summ)} rows; {failed} of {len(grid)} runs failed); "
              f"comparison page: {page}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vlmkit", description="vlmkit workbook runner")
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the numbered notebooks through papermill into a run directory")
    r.add_argument("--config", help="YAML file of notebook parameters")
    r.add_argument("-p", "--param", nargs=2, action="append", metavar=("KEY", "VALUE"),
                   help="one parameter (YAML value)")
    r.add_argument("--out", default="runs", help="parent folder of run directories (default runs/)")
    r.add_argument("--grid", nargs="+", metavar="KEY=V1,V2", help="batch over every combination")
    r.add_argument("--quick", action="store_true", help="tiny sizes for CI (a few minutes on 2 CPU cores)")
    r.add_argument("--only", help="comma-separated notebook numbers to run (e.g. 00,01)")
    r.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="run N grid points at once, each chain in its own process (default 1: one after the other)")
    r.add_argument("--run-dir",
                   help="continue an existing run directory (e.g. rerun --only 03,08 there) instead of a new one")
    from .claims.__main__ import add_arguments as claims_arguments, cmd_claims

    claims_arguments(sub.add_parser("claims",
                                    help="the claims ledger: re-test every headline claim, write docs/results.md"))
    e = sub.add_parser("export", help="write a run's embeddings + metadata in clip-retrieval's layout (vlmkit.export)")
    e.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (after notebooks 01-02)")
    e.add_argument("--out", help="output folder (default RUN_DIR/export)")
    from .audit.cli import add_arguments as audit_arguments, cmd_audit

    audit_arguments(sub.add_parser("audit",
                                   help="rank a dataset's likely false negatives and mismatched pairs; write a review "
                                        "page"))
    args = ap.parse_args(argv)
    try:
        if args.command == "claims":
            return cmd_claims(args, argv)
        if args.command == "export":
            from .export import export_run

            rec = export_run(args.run_dir, args.out)
            print(f"exported {', '.join(rec['methods'])} ({rec['images']} images, {rec['captions']} captions) to "
                  f"{args.out or Path(args.run_dir) / 'export'}" + (f"; skipped {', '.join(rec['skipped'])} (no "
                                                                    "features)" if rec["skipped"] else ""))
            return 0
        if args.command == "audit":
            return cmd_audit(args)
        return cmd_run(args)
    except VlmkitError as exc:
        print(f"vlmkit: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
