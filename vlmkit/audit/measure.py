"""How well an audit finds the errors, on data whose truth is known (the embedded data).

Truth per task: a false-negative candidate (i, j) is right when ``ds.positives()`` calls caption j
true of image i; a mismatch candidate is right when ``caption_meta["noisy"][j]`` (set by
:func:`vlmkit.data.shapes.inject_noise`: the caption is not true of its labelled image) — or,
without that column, when the exact truth says the labelled pair is false.

Per evidence column and for ``combined`` (each ranked by its suspicion, :data:`DIRECTIONS`):
precision@K (share of true errors among the K most suspicious), recall@K (true errors in the top K
over *all* true errors of the dataset: every unlabelled true pair for false negatives, every
noisy caption for mismatches) and AUROC of the suspicion for true errors vs the rest of the
candidates (for mismatches the candidates are all labelled pairs, so it is the full AUROC; for
false negatives it is within the shortlisted candidates).  ``coverage`` = true errors among all
candidates / all true errors (the shortlist's recall, the ceiling of recall@K).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..metrics import auroc
from ..utils import VlmkitError
from .core import DIRECTIONS, AuditResult, _kind


def truth_of(ds: Any, table: pd.DataFrame, task: str) -> np.ndarray:
    """For each row of a task table: is it a real error (see module docstring)?"""
    if ds.truth is None:
        raise VlmkitError(f"{ds.name} has no extended truth: an audit cannot be measured on it")
    if task == "mismatch":
        if "noisy" in ds.caption_meta:
            return np.asarray(ds.caption_meta["noisy"], bool)[table["caption"].to_numpy()]
        return ~ds.labelled_pairs_true()[table["caption"].to_numpy()]
    i, j = table["image"].to_numpy(), table["caption"].to_numpy()
    out = np.zeros(len(i), bool)
    for img in np.unique(i):
        sel = np.flatnonzero(i == img)
        out[sel] = ds.positives(np.array([img]), j[sel])[0]
    return out


def total_errors(ds: Any, task: str, block: int = 256, *, codes: Any | None = None) -> int:
    """All true errors of the dataset for ``task`` (the denominator of recall).  ``codes``: the
    data's :func:`vlmkit.metrics.streaming.pair_code_matrix` when at hand (false negatives =
    code 1, counted in row blocks) instead of computing the truth of every pair again."""
    if task == "mismatch":
        if "noisy" in ds.caption_meta:
            return int(np.asarray(ds.caption_meta["noisy"], bool).sum())
        return int((~ds.labelled_pairs_true()).sum())
    if codes is not None:
        from ..metrics.streaming import row_blocks

        if tuple(np.shape(codes)) != (ds.num_images, ds.num_captions):
            raise VlmkitError(f"codes: shape {tuple(np.shape(codes))}, expected {(ds.num_images, ds.num_captions)} "
                              f"(images × captions of {ds.name})")
        return int(sum(int((np.asarray(codes[r]) == 1).sum()) for r in row_blocks(ds.num_images, ds.num_captions)))
    return int(sum(ds.false_negatives(np.arange(a, min(a + block, ds.num_images)), None).sum()
                   for a in range(0, ds.num_images, block)))


def ranking_quality(suspicion: np.ndarray, is_error: np.ndarray, n_errors: int,
                    ks: Sequence[int] = (100, 1000)) -> dict[str, float]:
    order = np.argsort(-suspicion, kind="stable")
    hit = is_error[order]
    out: dict[str, float] = {}
    for k in ks:
        kk = min(k, len(hit))
        out[f"P@{k}"] = float(hit[:kk].mean()) if kk else float("nan")
        out[f"R@{k}"] = float(hit[:kk].sum() / n_errors) if n_errors else float("nan")
    out["AUROC"] = auroc(suspicion[is_error], suspicion[~is_error])
    out["coverage"] = float(is_error.sum() / n_errors) if n_errors else float("nan")
    return out


def evaluate_audit(ds: Any, result: AuditResult, ks: Sequence[int] = (100, 1000),
                   extra: dict[str, dict[str, Any]] | None = None, *, codes: Any | None = None) -> pd.DataFrame:
    """One row per (task, column): ``P@K``, ``R@K``, ``AUROC``, ``coverage``, ``n_errors``, ``n_candidates``
    (module docstring).  ``extra``: per task, ``{name: suspicion array aligned with the table}``
    to measure beside the columns (e.g. a baseline computed elsewhere).  ``codes``: the data's
    pair codes when at hand (:func:`total_errors`)."""
    rows = []
    for task, table in result.tables.items():
        err = truth_of(ds, table, task)
        n_err = total_errors(ds, task, codes=codes)
        cols = {c: DIRECTIONS[task][_kind(c)] * table[c].to_numpy(np.float64)
                for c in table.columns if _kind(c) in DIRECTIONS[task] and (":" in c or c.endswith("_consistency"))}
        cols["combined"] = table["combined"].to_numpy(np.float64)
        cols.update((extra or {}).get(task, {}))
        for name, s in cols.items():
            s = np.where(np.isnan(s), -np.inf, s)
            rows.append({"task": task, "column": name, **ranking_quality(s, err, n_err, ks),
                         "n_errors": n_err, "n_candidates": len(table)})
    return pd.DataFrame(rows)
