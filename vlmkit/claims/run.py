"""Run the ledger: every unit (cached, resumable) under one progress bar, then the verdicts and the document."""

from __future__ import annotations

import json
import math
import os
import platform
import time
from pathlib import Path

from ..rundir import CHECKOUT, in_checkout
from ..utils import VlmkitError, atomic_write_json, progress, resolve_device
from .config import LedgerConfig
from .experiments import load_result, plan, run_unit
from .ledger import evaluate_claims, trajectories

LEDGER = "ledger.json"
COMMITTED = Path("docs") / "results"
"""Where, in the source checkout, the committed ledger record lies (beside docs/results.md's figures)."""


def versions() -> dict[str, str]:
    import numpy
    import open_clip
    import torch

    from .. import __version__

    return {"python": platform.python_version(), "vlmkit": __version__, "torch": torch.__version__,
            "open_clip": open_clip.__version__, "numpy": numpy.__version__}


def _worker_init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


SIZES = "config.json"
RUNTIME_FIELDS = ("seeds", "workers", "device", "ft_methods", "noisy_methods", "clean_methods", "vacsr_variants",
                  "temperatures", "noise_reference", "stress_preset")
"""LedgerConfig fields that do not change a unit's result: how it runs, and which units run (more
seeds, methods, variants or τ add units of their own names; fewer leave cached ones unread)."""


def check_sizes(cfg: LedgerConfig, out: Path) -> None:
    """The cache is keyed by unit name, so ``out`` must hold results of the same sizes: the first
    run records them in ``<out>/config.json``; a later run with other sizes is refused (naming the
    fields) instead of mixing stale results into the verdicts."""
    sizes = json.loads(json.dumps({k: v for k, v in cfg.to_dict().items() if k not in RUNTIME_FIELDS}))
    p = out / SIZES
    if not p.is_file():
        atomic_write_json(p, sizes)
        return
    try:
        old = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise VlmkitError(f"{p}: not valid JSON ({e}); delete it only if every result under {out} is of the current "
                          "sizes") from None
    old = {k: v for k, v in old.items() if k not in RUNTIME_FIELDS}  # a record written before a field was runtime
    diff = sorted(k for k in set(sizes) | set(old) if sizes.get(k) != old.get(k))
    if diff:
        shown = "; ".join(f"{k}: cached {old.get(k)!r}, now {sizes.get(k)!r}" for k in diff[:6])
        raise VlmkitError(f"{out}: its cached results were computed with other ledger sizes ({shown}); use another "
                          "--out for these sizes (or delete that folder to recompute)")


def _run_units(units: list, cfg: LedgerConfig, out: Path, deadline: float | None = None) -> dict[str, dict | None]:
    """Every unit's result: cached ones read, the others computed in order here (``cfg.workers``
    = 1) or in ``cfg.workers`` processes at once (the units are independent; each is written
    atomically when done, so an interrupted parallel ledger resumes as a serial one). No unit
    starts after ``deadline`` (``time.time()``); those left are ``None``."""
    results: dict[str, dict | None] = {u.name: load_result(u, out) for u in units}
    todo = [u for u in units if results[u.name] is None]

    def time_left() -> bool:
        return deadline is None or time.time() < deadline

    if cfg.workers > 1 and len(todo) > 1 and time_left():  # no pool when nothing may start
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        import torch

        threads = max(1, torch.get_num_threads() // cfg.workers)
        with ProcessPoolExecutor(cfg.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init,
                                 initargs=(threads,)) as pool:
            bar = progress(total=len(todo), desc=f"claims ledger ({cfg.workers} workers)", unit="experiment")
            pending, running = list(todo), {}
            while pending or running:
                while pending and len(running) < cfg.workers and time_left():  # submit lazily: the deadline binds
                    u = pending.pop(0)
                    running[pool.submit(run_unit, u, cfg, out)] = u
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for f in done:
                    results[running.pop(f).name] = f.result()
                    bar.update()
            bar.close()
    else:
        bar = progress(todo, desc="claims ledger", unit="experiment")
        for u in bar:
            if not time_left():
                break
            bar.set_postfix_str(u.name, refresh=False)
            results[u.name] = run_unit(u, cfg, out)
    return results


def run_ledger(cfg: LedgerConfig, out: str | os.PathLike, doc: str | os.PathLike | None = None,
               command: str = "vlmkit claims", max_minutes: float | None = None) -> dict:
    """Compute (or reuse) every unit of :func:`~vlmkit.claims.experiments.plan` (``cfg.workers``
    at once), evaluate the claims, write ``<out>/ledger.json`` and, when ``doc`` is given, the
    document and its figures. ``max_minutes``: start no unit after that long (0: only read the
    cache); the claims whose units did not run are inconclusive and name them, and the same call
    later resumes. Returns the ledger record (``trained``: names of the units computed by this
    call; ``not_run``: those still missing; ``unit_seconds``: each unit's compute time when it ran)."""
    t0 = time.time()
    if max_minutes is not None and not (max_minutes >= 0 and math.isfinite(max_minutes)):
        raise VlmkitError(f"max_minutes={max_minutes!r}: expected a number of minutes ≥ 0 (0: only read the cache)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    check_sizes(cfg, out)
    units = plan(cfg)
    uncached = [u.name for u in units if load_result(u, out) is None]
    results = _run_units(units, cfg, out, None if max_minutes is None else t0 + 60 * max_minutes)
    trained = [name for name in uncached if results[name] is not None]
    not_run = [name for name, r in results.items() if r is None]
    results = {name: r for name, r in results.items() if r is not None}
    dev = resolve_device(cfg.device)
    ledger = {"config": cfg.to_dict(), "command": command, "wall_seconds": round(time.time() - t0, 1),
              "compute_seconds": round(sum(r.get("seconds", 0.0) for r in results.values()), 1),
              "device": (f"{dev.type}, {os.cpu_count()} CPU cores visible, "
                         f"torch threads {__import__('torch').get_num_threads()}"),
              "versions": versions(), "trained": trained, "not_run": not_run, "n_units": len(units),
              "workers": cfg.workers, "max_minutes": max_minutes,
              "unit_seconds": {name: r.get("seconds", 0.0) for name, r in results.items()},
              "sizes": (f"{cfg.preset} preset; {cfg.train_images} training images, {cfg.epochs} epoch(s), "
                        f"batch {cfg.batch_size}, "
                        f"lr {cfg.lr:g}; m²-Mix claims on clean data ({cfg.clean_noise:.0%} noise), VACSR claims at "
                        f"{cfg.noise:.0%} (and {cfg.noise_high:.0%}) noise; claim 10 at base τ "
                        f"{', '.join(f'{t:g}' for t in cfg.temperatures)}; test {cfg.test_images} images; "
                        f"VACSR on frozen "
                        f"features of {cfg.vacsr_train_images} images, {cfg.vacsr_epochs} epochs; claims 13–14 on "
                        f"{cfg.gen_grid[0]} shapes × {cfg.gen_grid[1]} colours = {cfg.gen_n_classes()} classes, "
                        f"{cfg.gen_shots}-shot, {cfg.gen_test_per_class} test images per class and domain, "
                        f"fine-tuning {cfg.gen_epochs} epoch(s), VACSR {cfg.gen_vacsr_epochs} epochs (batch "
                        f"{cfg.gen_vacsr_batch_size}) on the "
                        f"{(cfg.gen_n_classes() + 1) // 2} base classes (split seed {cfg.gen_split_seed}); model "
                        f"{cfg.model or 'own config'} / {cfg.pretrained}"),
              "claims": evaluate_claims(cfg, results), "trajectories": trajectories(cfg, results)}
    if doc is not None:
        from .document import write_document

        write_document(ledger, doc)
        ledger["document"] = str(doc)
        atomic_write_json(Path(doc).parent / "results" / LEDGER, ledger)  # beside its figures: docs/results/ledger.json
    atomic_write_json(out / LEDGER, ledger)
    return ledger


def read_ledger(out: str | os.PathLike) -> dict | None:
    """The ``ledger.json`` of an output directory, or ``None`` when the ledger was not run there."""
    p = Path(out) / LEDGER
    return json.loads(p.read_text()) if p.is_file() else None


def find_ledger(out: str | os.PathLike, committed: bool = False) -> dict | None:
    """:func:`read_ledger` of ``out``, or of ``out`` inside the source checkout when ``out`` is
    relative and not found here (notebooks run with the run directory as working directory);
    with ``committed``, else the checkout's committed ledger (``docs/results/ledger.json``, the
    record behind ``docs/results.md``). The record's ``source`` says which was found."""
    candidates = [Path(out)] + ([CHECKOUT / out] if not Path(out).is_absolute() else [])
    if committed and in_checkout():
        candidates.append(CHECKOUT / COMMITTED)
    for folder in candidates:
        found = read_ledger(folder)
        if found is not None:
            found["source"] = ("docs/results.md (the committed ledger)" if folder == CHECKOUT / COMMITTED
                               else str(folder))
            return found
    return None
