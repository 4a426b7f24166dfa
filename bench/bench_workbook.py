"""Benchmark: the whole workbook chain (``vlmkit run``) at several test-set sizes.

For each size it runs ``vlmkit run -p test_images N`` (plus ``--quick`` and any ``-p`` given)
into its own run directory and records, per notebook, the wall time (``run.json``, as papermill
measured it) and the peak RSS of the notebook's kernel process (its ``VmHWM`` from
``/proc/<pid>/status``, read every ``--interval`` seconds while it lives: the kernel's own
high-water mark, so short spikes between two reads are not missed), plus the peak RSS of the
runner process and the whole chain's wall time.  With two or more sizes it adds the growth
exponent of each figure between the smallest and the largest size, ``log(y2/y1) / log(n2/n1)``
in test images (1 = linear in images; 2 = linear in image × caption pairs).

    VLMKIT_NO_PNG=1 .venv/bin/python bench/bench_workbook.py                     # 1,000 and 5,000 images
    VLMKIT_NO_PNG=1 .venv/bin/python bench/bench_workbook.py --quick --sizes 60 120   # a check of the script
    VLMKIT_NO_PNG=1 .venv/bin/python bench/bench_workbook.py --quick --sizes 60 120 --only 00,01   # a 1-minute check

Writes ``--table`` (CSV, default ``bench/workbook.csv``) and prints a markdown table.  Linux only
(``/proc``).  The numbers depend on the machine's load: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from ``/proc/*/stat``)."""
    parent: dict[int, int] = {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text()
            parent[int(p.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    out, todo = [], [pid]
    while todo:
        cur = todo.pop()
        kids = [c for c, pp in parent.items() if pp == cur]
        out += kids
        todo += kids
    return out


def _hwm_mib(pid: int) -> float | None:
    """Peak resident set size (``VmHWM``) of ``pid`` in MiB; None once it has exited."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _is_kernel(pid: int) -> bool:
    try:
        return b"vlmkit.kernel" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def run_chain(size: int, out: Path, quick: bool, extra: list[list[str]], interval: float, only: str | None = None) -> dict:
    """One ``vlmkit run`` at ``size`` test images, polled; returns its figures."""
    cmd = [sys.executable, "-m", "vlmkit.cli", "run", "--out", str(out), "-p", "test_images", str(size)]
    if quick:
        cmd.append("--quick")
    if only:
        cmd += ["--only", only]
    for k, v in extra:
        cmd += ["-p", k, v]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))}
    t0 = time.time()
    log = open(out / f"run-{size}.log", "w")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    kernels: dict[int, float] = {}  # kernel pid → peak RSS seen, in order of appearance
    runner = 0.0
    while proc.poll() is None:
        runner = max(runner, _hwm_mib(proc.pid) or 0.0)
        for pid in _children(proc.pid):
            if pid in kernels or _is_kernel(pid):
                hwm = _hwm_mib(pid)
                if hwm is not None:
                    kernels[pid] = max(kernels.get(pid, 0.0), hwm)
        time.sleep(interval)
    log.close()
    wall = time.time() - t0
    runs = sorted(p for p in out.iterdir() if p.is_dir() and (p / "run.json").is_file())
    if proc.returncode != 0 or not runs:
        raise SystemExit(f"vlmkit run at {size} images failed (exit {proc.returncode}); see {out / f'run-{size}.log'}")
    meta = json.loads((runs[-1] / "run.json").read_text())
    names = list(meta["notebooks"])
    peaks = list(kernels.values())
    if len(peaks) != len(names):  # a kernel that lived less than one poll interval
        print(f"note: {len(peaks)} kernels seen for {len(names)} notebooks at {size} images; "
              "lower --interval for a per-notebook peak", file=sys.stderr)
        peaks = (peaks + [float("nan")] * len(names))[: len(names)]
    rows = [{"test_images": size, "notebook": n, "seconds": meta["notebooks"][n]["seconds"], "peak_rss_mib": round(p, 1)}
            for n, p in zip(names, peaks)]
    rows.append({"test_images": size, "notebook": "whole chain", "seconds": round(wall, 1),
                 "peak_rss_mib": round(max([runner, *[p for p in peaks if p == p]]), 1)})
    rows.append({"test_images": size, "notebook": "runner (vlmkit run)", "seconds": float("nan"), "peak_rss_mib": round(runner, 1)})
    return {"rows": rows, "run_dir": str(runs[-1])}


def growth(rows: list[dict], sizes: list[int]) -> dict[str, dict[str, float]]:
    """Notebook → {"seconds", "peak_rss_mib"} exponent between the smallest and largest size."""
    lo, hi = min(sizes), max(sizes)
    by = {(r["test_images"], r["notebook"]): r for r in rows}
    out: dict[str, dict[str, float]] = {}
    for (size, name), r in by.items():
        if size != lo or (hi, name) not in by:
            continue
        out[name] = {}
        for col in ("seconds", "peak_rss_mib"):
            a, b = r[col], by[(hi, name)][col]
            ok = all(isinstance(x, (int, float)) and x == x and x > 0 for x in (a, b))
            out[name][col] = round(math.log(b / a) / math.log(hi / lo), 2) if ok else float("nan")
    return out


def markdown(rows: list[dict], sizes: list[int], exps: dict) -> str:
    names = list(dict.fromkeys(r["notebook"] for r in rows))
    by = {(r["test_images"], r["notebook"]): r for r in rows}
    head = ["notebook"] + [f"{s:,} imgs: s / peak MiB" for s in sizes]
    if exps:
        head += ["growth exp. time", "growth exp. RSS"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n in names:
        cells = [n]
        for s in sizes:
            r = by.get((s, n))
            cells.append("—" if r is None else f"{r['seconds']:.0f} / {r['peak_rss_mib']:,.0f}".replace("nan", "—"))
        if exps:
            e = exps.get(n, {})
            cells += [f"{e.get('seconds', float('nan')):.2f}".replace("nan", "—"),
                      f"{e.get('peak_rss_mib', float('nan')):.2f}".replace("nan", "—")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_table(table: Path, rows: list[dict], sizes: list[int], exps: dict) -> None:
    """The CSV of every finished size (growth exponents on the largest size's rows)."""
    import csv

    sys.path.insert(0, str(ROOT))
    from vlmkit.utils import atomic_path

    cols = ["test_images", "notebook", "seconds", "peak_rss_mib", "growth_exp_seconds", "growth_exp_rss"]
    with atomic_path(table) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        for r in rows:
            e = exps.get(r["notebook"], {}) if r["test_images"] == max(sizes) else {}
            w.writerow({**r, "growth_exp_seconds": e.get("seconds", ""), "growth_exp_rss": e.get("peak_rss_mib", "")})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000], help="test images per run (default 1000 5000)")
    ap.add_argument("--quick", action="store_true", help="vlmkit run --quick (tiny training; for checking the script)")
    ap.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"), help="passed to vlmkit run")
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench-workbook"), help="parent folder of the runs")
    ap.add_argument("--table", default=str(ROOT / "bench" / "workbook.csv"), help="CSV written here")
    ap.add_argument("--only", help="passed to vlmkit run (e.g. 00,01 to check the script in a minute)")
    ap.add_argument("--interval", type=float, default=0.5, help="seconds between two reads of /proc")
    args = ap.parse_args(argv)
    if not Path("/proc/self/status").is_file():
        raise SystemExit("bench_workbook.py reads /proc: Linux only")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rows: list[dict] = []
    done: list[int] = []
    for size in args.sizes:  # the table is rewritten after each size: a run cut short keeps what finished
        out = Path(args.out) / f"{stamp}-{size}"
        out.mkdir(parents=True, exist_ok=True)
        print(f"running the chain at {size} test images into {out} (load average {os.getloadavg()[0]:.1f}) …", flush=True)
        res = run_chain(size, out, args.quick, args.param, args.interval, args.only)
        rows += res["rows"]
        done.append(size)
        sizes = sorted(set(done))
        exps = growth(rows, sizes) if len(sizes) > 1 else {}
        write_table(Path(args.table), rows, sizes, exps)
        print(markdown(rows, sizes, exps), flush=True)
    print(f"table: {args.table} (load average at the end: {os.getloadavg()[0]:.1f}; quick={args.quick})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
