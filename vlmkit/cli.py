"""``vlmkit run``: execute the numbered notebooks through papermill into a run directory.

    vlmkit run [--config params.yaml] [-p key value ...] [--out runs/] [--quick]
               [--grid seeds=0,1 noise_ratio=0,0.2 methods=contrastive+m2mix,sigmoid]
               [--only 00,01,...] [--run-dir runs/EXISTING]

Each run gets ``<out>/<timestamp>[-<grid point>]/`` with the executed notebooks, figures,
tables, the report and ``run.json``.  A grid runs every combination (``seeds`` is an alias
of ``seed``; inside a grid value ``+`` separates list items) and ends with
``<out>/batch-<timestamp>/summary.csv|html``.  Exit code 1 if any run failed.
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
from typing import Any

import yaml

from .utils import VlmkitError, atomic_write_json

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
KERNEL_NAME = "vlmkit-python"

QUICK = {"test_images": 60, "train_images": 120, "val_images": 40, "epochs": 1, "batch_size": 32,
         "pretrain_steps": 12, "pretrain_images": 600, "pretrain_batch": 64, "vacsr_epochs": 2,
         "projection": "pca", "max_points": 300, "methods": ["contrastive", "m2mix"], "primer_steps": 40,
         "quick": True}
ALIASES = {"seeds": "seed", "noise_ratios": "noise_ratio", "method": "methods"}


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


def notebooks(only: list[str] | None = None) -> list[Path]:
    nbs = sorted(p for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    if only:
        nbs = [p for p in nbs if p.name[:2] in only]
    if not nbs:
        raise VlmkitError(f"no notebooks found in {NOTEBOOK_DIR} (only={only})")
    return nbs


def ensure_kernel() -> str:
    """A kernelspec that runs *this* interpreter (so papermill uses the venv's packages)."""
    from .workbook import default_cache_dir

    root = default_cache_dir() / "jupyter"
    kdir = root / "kernels" / KERNEL_NAME
    kdir.mkdir(parents=True, exist_ok=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "vlmkit (python3)", "language": "python"}
    (kdir / "kernel.json").write_text(json.dumps(spec, indent=1))
    paths = os.environ.get("JUPYTER_PATH", "")
    if str(root) not in paths.split(os.pathsep):
        os.environ["JUPYTER_PATH"] = os.pathsep.join([str(root)] + ([paths] if paths else []))
    return KERNEL_NAME


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=NOTEBOOK_DIR.parent, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except Exception:
        return None


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("vlmkit")
    except Exception:
        return "unknown"


def run_chain(run_dir: Path, params: dict[str, Any], grid_point: dict[str, Any], only: list[str] | None = None) -> bool:
    """Execute the notebooks in order into ``run_dir``; stop at the first failure. Returns success."""
    import papermill as pm

    from .workbook import prepare_run_dir

    prepare_run_dir(run_dir)
    kernel = ensure_kernel()
    now = dt.datetime.now().isoformat(timespec="seconds")
    meta = {"parameters": params, "grid_point": grid_point, "vlmkit_version": _version(), "git_commit": git_commit(),
            "python": sys.executable, "started": now, "notebooks": {}, "status": "running"}
    if (run_dir / "run.json").is_file():  # continuing a run: keep what earlier notebooks recorded
        old = json.loads((run_dir / "run.json").read_text())
        meta["parameters"] = {**old.get("parameters", {}), **params}
        meta["notebooks"] = old.get("notebooks", {})
        meta["continued"] = old.get("continued", []) + [{"at": now, "git_commit": meta["git_commit"], "parameters": params}]
        meta["started"] = old.get("started", now)
    atomic_write_json(run_dir / "run.json", meta)
    ok = True
    for nb in notebooks(only):
        declared = set(pm.inspect_notebook(str(nb)).keys())
        p = {k: v for k, v in params.items() if k in declared}
        p["run_dir"] = str(run_dir.resolve())
        out = run_dir / "notebooks" / nb.name
        t0 = time.time()
        try:
            pm.execute_notebook(str(nb), str(out), parameters=p, kernel_name=kernel, progress_bar=False,
                                log_output=False, cwd=str(run_dir))
            meta["notebooks"][nb.name] = {"status": "ok", "seconds": round(time.time() - t0, 1)}
            print(f"[{run_dir.name}] {nb.name} ok ({time.time() - t0:.0f} s)", flush=True)
        except pm.PapermillExecutionError as exc:
            msg = f"notebook {nb.name} failed in cell {exc.cell_index} (execution {exc.exec_count}): {exc.ename}: {exc.evalue}"
            meta["notebooks"][nb.name] = {"status": "failed", "seconds": round(time.time() - t0, 1), "error": msg}
            print(f"[{run_dir.name}] {msg}\n  executed notebook kept at {out}", file=sys.stderr, flush=True)
            ok = False
        except Exception as exc:  # kernel died, bad notebook file, ...
            msg = f"notebook {nb.name} could not run: {type(exc).__name__}: {exc}"
            meta["notebooks"][nb.name] = {"status": "failed", "seconds": round(time.time() - t0, 1), "error": msg}
            print(f"[{run_dir.name}] {msg}", file=sys.stderr, flush=True)
            ok = False
        atomic_write_json(run_dir / "run.json", meta)
        if not ok:
            break
    meta["status"] = "ok" if ok else "failed"
    meta["finished"] = dt.datetime.now().isoformat(timespec="seconds")
    atomic_write_json(run_dir / "run.json", meta)
    return ok


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


def cmd_run(args: argparse.Namespace) -> int:
    params: dict[str, Any] = dict(QUICK) if args.quick else {}
    if args.config:
        cfg = yaml.safe_load(Path(args.config).read_text()) or {}
        if not isinstance(cfg, dict):
            raise VlmkitError(f"{args.config}: expected a mapping of parameter: value")
        params.update({ALIASES.get(k, k): v for k, v in cfg.items()})
    for k, v in args.param or []:
        params[ALIASES.get(k, k)] = _value(v)
    if isinstance(params.get("methods"), str):
        params["methods"] = [m for m in params["methods"].replace("+", ",").split(",") if m]
    grid = parse_grid(args.grid or [])
    out = Path(args.out)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    os.environ.setdefault("VLMKIT_HEADLESS", "1")
    os.environ.setdefault("VLMKIT_PROGRESS_INTERVAL", "30")
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    only = [s.strip()[:2] for s in args.only.split(",")] if args.only else None
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
        from .viz import table_html
        from .workbook import summarise_runs

        batch = out / f"batch-{stamp}"
        batch.mkdir(parents=True, exist_ok=True)
        summ = summarise_runs(run_dirs)
        summ.to_csv(batch / "summary.csv", index=False)
        (batch / "summary.html").write_text(
            "<html><head><meta charset='utf-8'><title>vlmkit batch summary</title></head><body>"
            + table_html(summ, "Batch summary across runs",
                         "Protocols as named in each row: R@K on the full test split with one-to-one labels "
                         "(coco5k column = 'full NxM' unless N = 5,000); mAP@R over exact extended positives (ECCV-style).")
            + "</body></html>")
        print(f"batch summary: {batch / 'summary.csv'} ({len(summ)} rows; {failed} of {len(grid)} runs failed)")
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
    args = ap.parse_args(argv)
    try:
        return cmd_run(args)
    except VlmkitError as exc:
        print(f"vlmkit: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
