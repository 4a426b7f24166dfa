"""Audit a dataset's own labels: likely false negatives and likely mismatched pairs (issue #23).

    from vlmkit import audit
    ds = load_dataset("coco:captions_val2017.json:val2017")
    scorers = [audit.zero_shot_scorer(ds, model="ViT-B-32", pretrained="openai")]
    scorers += audit.scorers_from_run("runs/2026…", ds)        # fine-tuned methods, VACSR (score + σ²)
    res = audit.audit_scores(ds, scorers, top_k=10)            # ranked tables, combined rank
    paths = audit.write_outputs(ds, res, "audit-out/")         # candidates.csv/.parquet, review.html, audit.json
    # review (review.html offline, or audit.review_widget(...) in JupyterLab), then:
    audit.write_decisions(ds, verdicts, "audit-out/")          # extended_positives.json + decisions.json
    ds2 = ds.with_extended_positives("audit-out/extended_positives.json")

The ranking, the candidates and the combined rule: :mod:`vlmkit.audit.core`; measuring it on
data with known truth: :mod:`vlmkit.audit.measure`; verdicts: :mod:`vlmkit.audit.decisions`;
the review page :mod:`vlmkit.viz.review`, the widget :mod:`vlmkit.audit.widget`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from ..utils import VlmkitError, atomic_path, atomic_to_csv, atomic_write_json, atomic_write_text
from .core import DIRECTIONS, RULE, TASKS, AuditResult, Scorer, audit_scores, combine_table, consistency, shortlist
from .decisions import VERDICTS, extended_positives, mismatched_captions, read_decisions, write_decisions
from .measure import evaluate_audit, ranking_quality, total_errors, truth_of

__all__ = ["AuditResult", "DIRECTIONS", "RULE", "Scorer", "TASKS", "VERDICTS", "audit_scores", "combine_table",
           "consistency", "evaluate_audit", "extended_positives", "mismatched_captions", "parquet_available",
           "ranking_quality",
           "read_decisions", "reevaluate", "review_columns", "scorers_from_run", "shortlist", "total_errors",
           "truth_of", "vacsr_scorer", "write_decisions", "write_outputs", "zero_shot_scorer"]


def zero_shot_scorer(ds: Any, model: str = "", pretrained: str = "stand-in", *, device: str = "auto",
                     cache_dir: str | os.PathLike | None = None, name: str = "zero-shot") -> Scorer:
    """The cosine of a (pretrained) model's features of ``ds`` (:func:`vlmkit.features.encode_dataset`)."""
    from ..features import encode_dataset
    from ..models.factory import load_model

    loaded = load_model(model, pretrained=pretrained, device=device)
    feats = encode_dataset(loaded, ds, cache_dir=cache_dir)
    return Scorer.from_features(name, feats.images, feats.texts)


def scorers_from_run(run_dir: str | os.PathLike, ds: Any | None = None,
                     methods: Sequence[str] | None = None) -> list[Scorer]:
    """One scorer per method registered in a run directory (``methods.json``): the cosine of its
    features, or its stored score matrix with its σ² (VACSR).  With ``ds``, shapes are checked."""
    from .. import workbook as wb

    reg = wb.list_methods(run_dir)
    if not reg:
        raise VlmkitError(f"{run_dir}: no methods registered (methods.json missing or empty): run notebooks 01/02 "
                          "there first")
    out = []
    import numpy as np
    import torch

    for name in (methods or sorted(reg, key=lambda n: n != "pretrained")):  # the zero-shot method first: the reference
        if name not in reg:
            raise VlmkitError(f"method {name!r} is not registered in {run_dir}/methods.json (has {sorted(reg)})")
        info = reg[name]
        # the stored blob itself (cosine=False: no N×M cosine matrix for feature methods); matrices are memmaps
        m = wb.load_method(run_dir, name, cosine=False)
        if m.get("scores") is not None:  # a stored score matrix (VACSR: with σ²) is what the method scores by
            s = Scorer.from_matrix(name,
                                   torch.from_numpy(np.array(m["scores"])) if isinstance(m["scores"], np.ndarray)
                                   else m["scores"],
                                   torch.from_numpy(np.array(m["uncertainty"]))
                                   if isinstance(m.get("uncertainty"), np.ndarray) else m.get("uncertainty"),
                                   kind=info.get("score_kind", "logit"))
        else:
            s = Scorer.from_features(name, m["img"], m["txt"])
        if ds is not None and s.shape != (ds.num_images, ds.num_captions):
            raise VlmkitError(f"{run_dir}: method {name!r} has {s.shape[0]}×{s.shape[1]} scores, but {ds.name} has "
                              f"{ds.num_images}×{ds.num_captions} pairs: the run evaluated other data")
        out.append(s)
    return out


def vacsr_scorer(ds: Any, base: Scorer, *, epochs: int = 5, seed: int = 0, batch_size: int = 256, name: str = "vacsr",
                 config: Any = None) -> Scorer:
    """Train a VACSR adapter on ``base``'s features of ``ds`` under ``ds``'s own labels (a
    self-audit: the labels being audited are the ones it learns from) and score with it (μ, σ²)."""
    from ..vacsr import VACSRConfig, train_on_features

    if not base.has_features:
        raise VlmkitError(f"vacsr_scorer: base scorer {base.name!r} has no features to train an adapter on")
    cfg = config or VACSRConfig(dim=int(base.img.shape[1]))
    adapter, _ = train_on_features(base.img, base.txt, ds.caption_image, cfg, epochs=epochs,
                                   batch_size=min(batch_size, ds.num_captions),
                                   seed=seed, device="cpu", show_progress=False)
    return Scorer.from_adapter(name, adapter, base.img, base.txt)


def parquet_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("pyarrow") is not None or importlib.util.find_spec("fastparquet") is not None


def review_columns(result: AuditResult) -> list[str]:
    """The evidence columns a review shows: each scorer's score and σ², the consistency, the loss, combined."""
    cols = []
    for t in result.tables.values():
        cols += [c for c in t.columns if (":" in c and not c.startswith("pct:")) or c.endswith("_consistency")]
    return list(dict.fromkeys(cols)) + ["combined"]


def write_outputs(ds: Any, result: AuditResult, out_dir: str | os.PathLike, *, n_review: int = 50,
                  thumb_size: int = 96) -> dict[str, Path]:
    """Write ``candidates.csv``, ``candidates.parquet`` (when pyarrow or fastparquet is installed;
    ``audit.json`` says when it is not), ``review.html`` (the top ``n_review`` of each task with
    thumbnails) and ``audit.json`` (sizes, scorers, rule, protocol, files); all atomically."""
    from ..viz.review import review_page_html

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = result.candidates()
    paths = {"csv": out / "candidates.csv", "review": out / "review.html", "manifest": out / "audit.json"}
    atomic_to_csv(table, paths["csv"])
    note = ""
    if parquet_available():
        paths["parquet"] = out / "candidates.parquet"
        with atomic_path(paths["parquet"]) as tmp:
            table.to_parquet(tmp, index=False)
    else:
        note = "candidates.parquet not written: neither pyarrow nor fastparquet is installed (pip install pyarrow)"
    top = {t: d.head(n_review) for t, d in result.tables.items()}
    atomic_write_text(paths["review"],
                      review_page_html(ds, top, review_columns(result), info=result.info, size=thumb_size))
    atomic_write_json(paths["manifest"], {**result.info, "combined_columns": result.combine, "n_review": int(n_review),
                                          "files": {k: p.name for k, p in paths.items()}, "note": note})
    return paths


def reevaluate(ds: Any, scorer: Scorer, extended_positives_path: str | os.PathLike) -> pd.DataFrame:
    """mAP@R / R-Precision of ``scorer`` per direction before (``ds.positives()``: the data's own
    labels and truth) and after crediting the reviewed pairs (``ds.with_extended_positives(path)``:
    one-to-one labels ∪ the file's positives); one row per (direction, positives)."""
    from ..metrics import Positives, ranking_metrics
    from ..metrics.scores import Scores

    if scorer.has_features:
        s = Scores.from_features(scorer.img, scorer.txt, normalize=False, device="cpu")
    elif scorer.scores is not None:
        s = Scores(scorer.scores)
    else:
        raise VlmkitError(f"reevaluate: scorer {scorer.name!r} needs features or a score matrix")
    from ..workbook import truth_protocol

    after_ds = ds.with_extended_positives(extended_positives_path)
    rows = []
    for label, d in ((f"before: {truth_protocol(ds)}", ds),
                     ("after: one-to-one labels ∪ reviewed positives", after_ds)):
        p = Positives.from_dataset(d)
        for direction, sc, pp in (("i2t", s, p), ("t2i", s.T, p.T)):
            r = ranking_metrics(sc, pp, empty="skip")
            rows.append({"scorer": scorer.name, "direction": direction, "positives": label,
                         "mAP@R": r["map_at_r"], "R-Precision": r["r_precision"], "queries": r["n_queries"]})
    return pd.DataFrame(rows)
