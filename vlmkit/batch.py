"""A batch of runs (``vlmkit run --grid``) aggregated over seeds: tables, figures and the
comparison page's sections — and the same from a notebook on any batch directory::

    from vlmkit import batch
    b = batch.load("runs/batch-20261204-233000")   # re-reads the runs it lists (continued ones too)
    b.aggregate()      # every metric per grid point and method: n, mean, sd, 95 % interval over seeds
    b.differences()    # paired differences method A − method B within a seed, over seeds
    b.table()          # grid points × methods, "mean ± sd" under the report's precision rule
    b.figures()        # {name: plotly figure}: each headline metric against each grid parameter
    b.write()          # summary.csv, summary_by_seed.csv, figures/ and report.html again

**Grouping.** Rows of ``summary.csv`` (one per run and method) that differ only in ``seed``
form one *cell* (grid point without the seed × method).  **Intervals**: over the seeds of a
cell, :func:`vlmkit.stats.t_interval` — mean, sample sd (n − 1) and the 95 % Student-t interval
of the mean, mean ± t(0.975, n−1)·sd/√n — the claims ledger's rule.  **Paired differences**
(A − B) are taken within each run (same seed, same grid point), then aggregated the same way,
over the seeds where both methods have a value.

With ``methods`` as a grid parameter, a method a grid point did not ask for is not part of
that point (``—``), not missing.

**Partial grids** are shown, never averaged over silently: each cell states ``n`` (seeds with
a value) of ``n_expected`` (the seeds of the whole batch) and lists ``missing_seeds``; runs whose
status is not ``ok`` are left out of every number and listed (:meth:`Batch.excluded`); a cell
with no seed is ``missing`` (in tables ``missing``; in figures × on the axis).  A metric a method
never reports anywhere in the batch (the pretrained model has no uncertainty) is ``—``.  Two
``ok`` runs of the same grid point and seed: the later run (by name) counts, the other is listed.
"""

from __future__ import annotations

import html
import math
import os
import re
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .stats import INTERVAL_RULE, t_interval
from .utils import VlmkitError, atomic_to_csv, progress

SEED_KEYS = ("seed", "seeds")
HEADLINE = (r"^R@1 i2t\b", r"^R@1 t2i\b", r"^RSUM\b", r"^gap\b", r"^ECE % i2t \[one-to-one", r"^ECE % t2i \[one-to-one",
            r"^unc–R@1 r \[one-to-one labels\]( i2t)?$", r"^unc–R@1 r \[one-to-one labels\] t2i$")
"""Regular expressions picking the headline metrics among ``summary.csv``'s columns, in order; each
picks its first match (``R@1 i2t [full 60x300]``, one-to-one labels, comes before the extended
positives' ``R@1 i2t [extended positives …]`` in a run's summary)."""
PREFERRED_BASELINES = ("contrastive", "pretrained")
RANGES = ((r"^(R@\d|ECE|mAP@R|R-P)|%", (0.0, 100.0)), (r"^RSUM", (0.0, 600.0)), (r"AUROC", (0.0, 1.0)),
          (r"(^|\s)r(\s|$)|pearson|spearman", (-1.0, 1.0)))
"""A metric's possible range by its name (first match): intervals are drawn within it."""
AGG_COLUMNS = ["kind", "method", "metric", "n", "n_expected", "seeds", "missing_seeds", "mean", "sd", "ci95_lo",
               "ci95_hi"]
PROTOCOL = f"each metric as named (the runs' tables/summary.csv); over seeds: {INTERVAL_RULE}"


def _num(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _seed_text(seeds: Sequence[Any]) -> str:
    return ",".join(str(int(s)) if _num(s) and float(s).is_integer() else str(s) for s in seeds)


@dataclass
class Batch:
    """Every run's raw rows (``rows``: the layout of ``summary.csv``) and what aggregates them."""

    rows: pd.DataFrame
    folder: Path | None = None
    run_dirs: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.raw = self.rows.copy()  # written back as summary.csv, untouched
        cols = list(self.rows.columns)
        if "method" not in cols:
            where = f"{self.folder / 'summary.csv'}" if self.folder else "summary"
            raise VlmkitError(f"{where}: no 'method' column (expected one row per run and method, as vlmkit run --grid "
                              "writes)")
        head = cols[:cols.index("method")]
        self.params = [c for c in head if c not in ("run", "status")]
        self.seed_key = next((k for k in SEED_KEYS if k in self.params), None)
        self.point_params = [p for p in self.params if p != self.seed_key]
        tail = [c for c in cols[cols.index("method") + 1:] if c != "protocol"]
        num = {c: pd.to_numeric(self.rows[c], errors="coerce") for c in tail}
        self.metrics = [c for c in tail if num[c].notna().any()]
        for c in self.metrics:
            self.rows[c] = num[c]
        if "status" not in cols:
            self.rows["status"] = "ok"
        if "run" not in cols:
            self.rows["run"] = [f"row {i + 2}" for i in range(len(self.rows))]
        ok = self.rows["status"].astype(str) == "ok"
        self._excluded = self.rows.loc[~ok, ["run", "status"] + self.params].drop_duplicates("run")
        used = self.rows[ok & self.rows["method"].notna()].copy()
        used["_seed"] = used[self.seed_key] if self.seed_key else 0
        # two ok runs of one grid point and seed: the later (by run name) counts
        key = [*self.point_params, "_seed", "method"]
        used = used.sort_values("run", kind="stable")
        dup = used.duplicated(key, keep="last")
        self._superseded = sorted(set(used.loc[dup, "run"]) - set(used.loc[~dup, "run"]))
        self.used = used[~dup].reset_index(drop=True)
        self.methods = list(dict.fromkeys(self.used["method"].astype(str)))
        self.seeds = sorted(set(self.rows[self.seed_key].dropna())) if self.seed_key else [0]
        self.points = (self.rows[self.point_params].drop_duplicates().reset_index(drop=True) if self.point_params
                       else pd.DataFrame(index=[0]))
        self.numeric = {p: (bool(pd.to_numeric(self.rows[p], errors="coerce").notna().all())
                            and self.rows[p].map(_num).all())
                        for p in self.point_params}

    # ----------------------------------------------------------------- aggregation
    def excluded(self) -> pd.DataFrame:
        """Runs left out of every number: status not ``ok`` (failed, or never finished), and runs
        superseded by a later run of the same grid point and seed (status ``superseded``)."""
        sup = self.rows[self.rows["run"].isin(self._superseded)][["run", "status"] + self.params].drop_duplicates("run")
        return pd.concat([self._excluded, sup.assign(status="superseded")], ignore_index=True)

    def _cells(self):
        """(point dict, rows of that point) for each grid point without the seed, in grid order."""
        for _, pt in self.points.iterrows():
            mask = np.ones(len(self.used), dtype=bool)
            for p in self.point_params:
                mask &= (self.used[p].astype(str) == str(pt[p])).to_numpy()
            yield {p: pt[p] for p in self.point_params}, self.used[mask]

    def _record(self, point: dict, kind: str, method: str, metric: str, by_seed: dict[Any, float]) -> dict:
        vals = {s: v for s, v in by_seed.items() if v is not None and math.isfinite(v)}
        mean, sd, lo, hi = t_interval(list(vals.values()))
        missing = [s for s in self.seeds if s not in vals]
        return {**point, "kind": kind, "method": method, "metric": metric, "n": len(vals),
                "n_expected": len(self.seeds), "seeds": _seed_text(sorted(vals)) if self.seed_key else "",
                "missing_seeds": _seed_text(missing) if self.seed_key else "",
                "mean": mean, "sd": sd, "ci95_lo": lo, "ci95_hi": hi}

    def _reported(self, method: str, metric: str) -> bool:
        return bool(self.used.loc[self.used["method"] == method, metric].notna().any())

    def _runs_method(self, point: dict, method: str) -> bool:
        """Whether ``method`` belongs to ``point``: with ``methods`` as a grid parameter, only the
        methods that some ok run with the same ``methods`` value reports (a method the point did
        not ask for is not missing); when no such run succeeded, every method (all missing)."""
        if "methods" not in point:
            return True
        same = self.used.loc[self.used["methods"].astype(str) == str(point["methods"]), "method"]
        return same.empty or method in set(same)

    def aggregate(self, metrics: Sequence[str] | None = None) -> pd.DataFrame:
        """One row per grid point (without the seed), method and metric: ``n`` seeds with a value
        of ``n_expected``, ``seeds``, ``missing_seeds``, ``mean``, ``sd``, ``ci95_lo``, ``ci95_hi``
        (:func:`vlmkit.stats.t_interval`).  Metrics a method never reports are left out."""
        out = []
        for point, rows in self._cells():
            for m in self.methods:
                mine = rows[rows["method"] == m]
                for metric in metrics or self.metrics:
                    if self._reported(m, metric) and self._runs_method(point, m):
                        out.append(self._record(point, "value", m, metric, dict(zip(mine["_seed"], mine[metric]))))
        return pd.DataFrame(out, columns=[*self.point_params, *AGG_COLUMNS])

    def pairs(self, baseline: str | None = None) -> list[tuple[str, str]]:
        """``(A, B)`` pairs for A − B: every method against ``baseline`` (default contrastive,
        else pretrained, else the first method); ``baseline="all"``: every pair, later − earlier."""
        if baseline == "all":
            return [(b, a) for a, b in combinations(self.methods, 2)]
        base = baseline or self.baseline()
        if base not in self.methods:
            raise VlmkitError(f"baseline {base!r}: no such method in this batch (methods: {', '.join(self.methods)})")
        return [(m, base) for m in self.methods if m != base]

    def baseline(self) -> str:
        return next((b for b in PREFERRED_BASELINES if b in self.methods), self.methods[0] if self.methods else "")

    def differences(self, baseline: str | None = "all", metrics: Sequence[str] | None = None) -> pd.DataFrame:
        """Paired differences ``A − B`` per grid point and metric (``method`` = ``"A − B"``,
        ``kind`` = ``paired difference``): within each run (same seed), then over the seeds where
        both have a value, as :meth:`aggregate`.  ``baseline``: see :meth:`pairs`."""
        out = []
        for point, rows in self._cells():
            for a, b in self.pairs(baseline):
                ra = rows[rows["method"] == a].set_index("_seed")
                rb = rows[rows["method"] == b].set_index("_seed")
                for metric in metrics or self.metrics:
                    if not (self._reported(a, metric) and self._reported(b, metric)
                            and self._runs_method(point, a) and self._runs_method(point, b)):
                        continue
                    both = ra.index.intersection(rb.index)
                    diff = {s: float(ra.at[s, metric]) - float(rb.at[s, metric]) for s in both}
                    out.append(self._record(point, "paired difference", f"{a} − {b}", metric, diff))
        return pd.DataFrame(out, columns=[*self.point_params, *AGG_COLUMNS])

    def by_seed(self) -> pd.DataFrame:
        """What ``summary_by_seed.csv`` holds: :meth:`aggregate` then :meth:`differences` (every
        pair), with a ``protocol`` column."""
        return pd.concat([self.aggregate(), self.differences("all")], ignore_index=True).assign(protocol=PROTOCOL)

    def missing(self) -> pd.DataFrame:
        """Cells (grid point × method) with fewer seeds than the grid, over every metric the
        method reports: the seeds that are missing."""
        agg = self.aggregate()
        short = agg[agg["n"] < agg["n_expected"]]
        if short.empty:
            return pd.DataFrame(columns=[*self.point_params, "method", "n", "n_expected", "missing_seeds"])
        return (short.groupby([*self.point_params, "method"], sort=False, dropna=False)
                .agg(n=("n", "min"), n_expected=("n_expected", "first"),
                     missing_seeds=("missing_seeds", "first")).reset_index())

    def headline(self) -> list[str]:
        """The headline metrics this batch holds (:data:`HEADLINE`), in that order."""
        out = []
        for pat in HEADLINE:
            out += [m for m in self.metrics if re.search(pat, m) and m not in out][:1]
        return out

    # ----------------------------------------------------------------- tables
    def table(self, metrics: Sequence[str] | None = None) -> pd.DataFrame:
        """Metric and grid point as rows, methods as columns: ``mean ± sd`` under the report's
        precision rule (:func:`vlmkit.report.format_value`), ``(n=k/K)`` when seeds are missing,
        ``missing`` for a cell with no seed, ``—`` for a metric the method does not report."""
        from .report import format_value, value_kind

        agg = self.aggregate(metrics or self.metrics)
        rows = []
        for metric in metrics or self.metrics:
            kind = value_kind(metric)
            for point, _ in self._cells():
                rec: dict[str, Any] = {"metric": metric, **{p: _show(v) for p, v in point.items()}}
                for m in self.methods:
                    hit = agg[(agg["method"] == m) & (agg["metric"] == metric)]
                    for p, v in point.items():
                        hit = hit[hit[p].astype(str) == str(v)]
                    rec[m] = _cell_text(hit.iloc[0], kind, format_value) if len(hit) else "—"
                rows.append(rec)
        return pd.DataFrame(rows, columns=["metric", *self.point_params, *self.methods])

    # ----------------------------------------------------------------- figures
    def figures(self, metrics: Sequence[str] | None = None, baseline: str | None = None) -> dict[str, Any]:
        """``{name: go.Figure}``: each metric (default :meth:`headline`) against each grid parameter
        other than the seed (:func:`vlmkit.viz.batch.metric_figure`: one series per method —
        per method and values of the other parameters when there are several — with its 95 %
        interval, and the paired differences against ``baseline``).  A grid over seeds only
        gets one bar chart per metric."""
        from .viz.batch import metric_figure

        base = baseline or self.baseline()
        metrics = list(metrics or self.headline())
        agg, diff = self.aggregate(metrics), self.differences(base, metrics)
        figs = {}
        for metric in metrics:
            for param in self.point_params or [None]:
                others = [p for p in self.point_params if p != param]
                v, d = agg[agg["metric"] == metric].copy(), diff[diff["metric"] == metric].copy()
                for f in (v, d):
                    f["series"] = [m + "".join(f" · {p}={_show(r[p])}" for p in others)
                                   for m, (_, r) in zip(f["method"], f.iterrows())]
                    if param is not None and self.numeric.get(param):
                        f[param] = f[param].astype(float)
                name = f"{_slug(metric)}_vs_{_slug(param) if param else 'method'}"
                figs[name] = metric_figure(v, d, metric, param, baseline=base,
                                           numeric=bool(param and self.numeric.get(param)), bounds=metric_range(metric))
        return figs

    # ----------------------------------------------------------------- writing
    def write(self, folder: str | os.PathLike | None = None, *, png: bool | None = None) -> Path:
        """Write ``summary.csv`` (every run's raw row), ``summary_by_seed.csv`` (:meth:`by_seed`),
        ``figures/<metric>_vs_<parameter>.{html,png}`` and, when the run directories are known,
        ``report.html`` (the comparison page with these sections) into ``folder`` (default: the
        batch's own); returns the page (or ``summary_by_seed.csv``)."""
        from .viz.io import save_figure

        out = Path(folder) if folder is not None else self.folder
        if out is None:
            raise VlmkitError("Batch.write: no folder given and the batch was not loaded from one")
        out.mkdir(parents=True, exist_ok=True)
        atomic_to_csv(self.raw, out / "summary.csv")
        atomic_to_csv(self.by_seed(), out / "summary_by_seed.csv")
        for stale in (out / "figures").glob("*_vs_*.*") if (out / "figures").is_dir() else []:
            stale.unlink()
        figs = self.figures()
        for name in progress(figs, total=len(figs), desc="batch figures"):  # a PNG export takes seconds
            save_figure(figs[name], out / "figures" / name, png=png)
        if not self.run_dirs:
            return out / "summary_by_seed.csv"
        from .report import build_grid_report

        return build_grid_report(self.run_dirs, out / "report.html", sections=self.sections_html(out))

    def sections_html(self, folder: Path) -> str:
        """The comparison page's aggregate sections: the figures saved under ``folder/figures``
        (PNG embedded; without a PNG the interactive HTML in a frame), the one table of metrics
        (grid points × methods), the partial cells and the runs left out."""
        from .report import _png_uri, table_html

        parts = [(f"<section id=figures><h2>Each headline metric against the grid's parameters</h2><p class=narrative>"
                 "Left: each method's mean over the seeds with its 95 % Student-t interval (band, or error bars for a "
                 f"categorical parameter). How: {html.escape(INTERVAL_RULE)}. "
                 f"Right: the paired difference method − {html.escape(self.baseline())} within each seed, with its "
                 "interval; "
                 "where the interval excludes the dashed zero line the difference is larger than the seed spread. "
                 "Open markers and hatched bars: fewer seeds than the grid; ×: no seed at all (a failed or missing "
                 "run).</p>")]
        for name in self.figures():
            png, page = folder / "figures" / f"{name}.png", f"figures/{name}.html"
            if png.is_file():
                parts.append(f"<figure><img class=fig src='{_png_uri(png)}' "
                             f"alt='{html.escape(name)}'><figcaption>{html.escape(name)} · "
                             "interactive: <a "
                             f"href='{html.escape(page)}'>{html.escape(page)}</a></figcaption></figure>")
            else:
                parts.append(f"<figure><iframe class=plotly src='{html.escape(page)}' title='{html.escape(name)}' "
                             "style='width:100%;height:540px;border:0'></iframe><figcaption>"
                             f"{html.escape(name)} (interactive; no static PNG in this batch)</figcaption></figure>")
        parts.append("</section>")
        n_seeds = (f"{len(self.seeds)} seed(s): {_seed_text(self.seeds)}" if self.seed_key
                   else "one run per grid point (no seed in the grid)")
        parts.append("<section id=by-seed><h2>Every metric: grid points × methods, mean ± sd over seeds</h2>"
                     f"<p class=narrative>{html.escape(n_seeds)}. A cell reads mean ± sd; (n=k/K) when only k of the K "
                     "seeds "
                     "have a value; <b>missing</b> when none has; — when the method does not report the metric. "
                     "Intervals and paired differences: summary_by_seed.csv.</p>"
                     + table_html(self.table(), protocol=PROTOCOL, label_col="metric", max_rows=1000) + "</section>")
        miss, excl = self.missing(), self.excluded()
        body = ("<p>Every cell holds every seed; no run was left out.</p>" if miss.empty and excl.empty else "")
        if not miss.empty:
            body += table_html(miss, protocol="cells (grid point × method) with fewer seeds than the grid",
                               max_rows=500)
        if not excl.empty:
            body += table_html(excl, protocol="runs left out of every number (status not ok, or superseded by a later "
                                              "run)", max_rows=500)
        parts.append(f"<section id=partial><h2>Partial grid</h2>{body}</section>")
        return "".join(parts)


def metric_range(metric: str) -> tuple[float, float] | None:
    """The range a metric can take, read from its name (:data:`RANGES`); None when unknown."""
    return next((r for pat, r in RANGES if re.search(pat, metric, re.I)), None)


def _show(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v)) if abs(v) >= 1 or v == 0 else str(v)
    return str(v)


def _slug(text: str) -> str:
    t = text.replace("%", "pct").replace("‖Δ‖", "").replace("–", "-").replace("@", "")
    return re.sub(r"[^A-Za-z0-9]+", "_", t).strip("_").lower()


def _cell_text(r: pd.Series, kind: str, fmt) -> str:
    n, e = int(r["n"]), int(r["n_expected"])
    if n == 0:
        return "missing"
    text = fmt(float(r["mean"]), kind) + (f" ± {fmt(float(r['sd']), kind)}" if math.isfinite(r["sd"]) else "")
    return text + (f" (n={n}/{e})" if n < e else "")


def from_summary(rows: pd.DataFrame, folder: str | os.PathLike | None = None,
                 run_dirs: Sequence[str | os.PathLike] = ()) -> Batch:
    """A :class:`Batch` of rows laid out as ``summary.csv`` (run, status, grid parameters, method, metrics …)."""
    return Batch(rows.copy(), Path(folder) if folder is not None else None, [Path(r) for r in run_dirs])


def from_runs(run_dirs: Sequence[str | os.PathLike], folder: str | os.PathLike | None = None) -> Batch:
    """A :class:`Batch` of run directories (:func:`vlmkit.workbook.summarise_runs` of them)."""
    from .workbook import summarise_runs

    if not run_dirs:
        raise VlmkitError("batch: no run directories given")
    return from_summary(summarise_runs(list(run_dirs)), folder, run_dirs)


def load(batch_dir: str | os.PathLike, *, add: Sequence[str | os.PathLike] = (), refresh: bool = True) -> Batch:
    """The batch written by ``vlmkit run --grid`` in ``batch_dir`` (``summary.csv``).

    With ``refresh`` (default) the runs it lists are read again from their directories beside
    the batch folder, so a run continued with ``--run-dir`` counts with its new numbers; ``add``
    appends more run directories (e.g. another seed run later).  A run directory that no longer
    exists keeps its rows from ``summary.csv``."""
    folder = Path(batch_dir)
    path = folder / "summary.csv"
    if not path.is_file():
        raise VlmkitError(f"{path}: no such file (expected the folder vlmkit run --grid wrote, runs/batch-<stamp>/)")
    try:
        rows = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise VlmkitError(f"{path}: not a readable CSV ({exc})") from None
    if not refresh and not add:
        return from_summary(rows, folder)
    names = list(dict.fromkeys(rows["run"].astype(str))) if "run" in rows.columns else []
    found = [folder.parent / n for n in names if (folder.parent / n / "run.json").is_file()]
    extra = [Path(a) for a in add]
    for a in extra:
        if not (a / "run.json").is_file():
            raise VlmkitError(f"load(add=...): {a} is not a run directory (no run.json)")
    runs = list(dict.fromkeys(found + extra))
    if not runs:
        return from_summary(rows, folder)
    from .workbook import summarise_runs

    fresh = summarise_runs(runs)
    kept = rows[~rows["run"].astype(str).isin({r.name for r in runs})] if "run" in rows.columns else rows.iloc[:0]
    return from_summary(pd.concat([fresh, kept], ignore_index=True), folder, runs)


def write_batch(folder: str | os.PathLike, run_dirs: Sequence[str | os.PathLike], *, png: bool | None = None) -> Path:
    """What ``vlmkit run --grid`` ends with: :func:`from_runs` then :meth:`Batch.write`; returns the page.

    When no run of the grid reached a summary (every chain failed early, or ``--only`` skipped
    08), there is nothing to aggregate: the page is the per-point comparison alone
    (:func:`vlmkit.report.build_grid_report`, which says why each run has no summary)."""
    from .workbook import summarise_runs

    if not run_dirs:
        raise VlmkitError("batch: no run directories given")
    rows = summarise_runs(list(run_dirs))
    if "method" not in rows.columns:
        from .report import build_grid_report

        return build_grid_report(list(run_dirs), Path(folder) / "report.html")
    return from_summary(rows, folder, run_dirs).write(folder, png=png)
