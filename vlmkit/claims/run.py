"""Run the ledger: every unit (cached, resumable) under one progress bar, then the verdicts and the document."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from ..rundir import CHECKOUT, in_checkout
from ..utils import atomic_write_json, progress, resolve_device
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


def run_ledger(cfg: LedgerConfig, out: str | os.PathLike, doc: str | os.PathLike | None = None,
               command: str = "vlmkit claims") -> dict:
    """Compute (or reuse) every unit of :func:`~vlmkit.claims.experiments.plan`, evaluate the
    claims, write ``<out>/ledger.json`` and, when ``doc`` is given, the document and its figures.
    Returns the ledger record (``trained``: names of the units computed by this call)."""
    t0 = time.time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    units = plan(cfg)
    results, trained = {}, []
    bar = progress(units, desc="claims ledger", unit="experiment")
    for u in bar:
        bar.set_postfix_str(u.name, refresh=False)
        if load_result(u, out) is None:
            trained.append(u.name)
        results[u.name] = run_unit(u, cfg, out)
    dev = resolve_device(cfg.device)
    ledger = {"config": cfg.to_dict(), "command": command, "wall_seconds": round(time.time() - t0, 1),
              "compute_seconds": round(sum(r.get("seconds", 0.0) for r in results.values()), 1),
              "device": f"{dev.type}, {os.cpu_count()} CPU cores visible, torch threads {__import__('torch').get_num_threads()}",
              "versions": versions(), "trained": trained, "n_units": len(units),
              "sizes": (f"{cfg.preset} preset; {cfg.train_images} training images, {cfg.epochs} epoch(s), batch {cfg.batch_size}, "
                        f"lr {cfg.lr:g}; test {cfg.test_images} images; VACSR on frozen features of {cfg.vacsr_train_images} "
                        f"images, {cfg.vacsr_epochs} epochs; model {cfg.model or 'own config'} / {cfg.pretrained}"),
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
            found["source"] = "docs/results.md (the committed ledger)" if folder == CHECKOUT / COMMITTED else str(folder)
            return found
    return None
