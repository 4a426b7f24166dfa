"""The run's report: one self-contained HTML document (``report/report.html``) that opens offline.

:func:`build_report` assembles what a run left on disk — ``tables/*.csv`` (each with its
``protocol``), the PNG figures under ``figures/`` (embedded as base64 data URIs; which exist is
read from ``figures/_export.json``, see :func:`vlmkit.workbook.show`), image panels (HTML files
under ``figures/`` that are not plotly figures, e.g. ``01_test_images.html``), ``run.json``
(parameters, warnings, skips) and, when given, the claims ledger (``docs/results.md``) — into
sections, each with a short narrative: what the figure shows and what to look for.
:func:`build_grid_report` writes one comparison page across the grid points of ``vlmkit run --grid``.
:func:`write_result_tables` computes the retrieval and summary tables that notebook 08 shows.

Numbers follow one rule (:data:`PRECISION_RULE`, stated in each report's header): see
:func:`format_value`.  No external resource (no script, font or stylesheet) is referenced.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import math
import os
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .report_text import CSS, NARRATIVE, SECTIONS, TABLE_TITLES
from .rundir import CHECKOUT, in_checkout, read_run_meta, skipped_table, warnings_table
from .utils import VlmkitError, atomic_write_text

PRECISION_RULE = ("Numbers: percentages (R@K, RSUM, mAP@R, R-P, ECE and every quantity in %) with 2 decimals; "
                  "correlations (Pearson / Spearman r), AUROC and every other real number (gaps, cosines, scores, σ², "
                  "losses) with 3 decimals, or 3 significant digits in scientific notation below 0.001; "
                  "counts as integers; — = not available.")
_CORR = re.compile(r"pearson|spearman|auroc|(^|[\s_])r($|[\s_])|corr", re.I)
_PCT = re.compile(r"R@\d|RSUM|mAP@R|R-P|ECE|%|(^|_)r\d+($|_)|(^|_)rsum($|_)", re.I)
MAX_ROWS = 40


def value_kind(label: str) -> str:
    """``"real"`` for correlations / AUROC, ``"pct"`` for percentage metrics, else ``"real"``."""
    if _CORR.search(label):
        return "real"
    return "pct" if _PCT.search(label) else "real"


def format_value(v: Any, kind: str = "real") -> str:
    """One cell under :data:`PRECISION_RULE`: ``kind`` ``"pct"`` → 2 decimals, ``"real"`` → 3
    decimals (scientific below 0.001), ``"int"`` → integer; NaN/None → ``—``."""
    if v is None or (isinstance(v, (float, np.floating)) and math.isnan(v)):
        return "—"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)) or kind == "int":
        return f"{int(v):d}"
    if isinstance(v, (float, np.floating)):
        if kind == "pct":
            return f"{v:.2f}"
        return f"{v:.2e}" if v != 0 and abs(v) < 1e-3 else f"{v:.3f}"
    return str(v)


def table_html(df: pd.DataFrame, *, protocol: str | None = None, label_col: str | None = None,
               max_rows: int = MAX_ROWS, source: str = "") -> str:
    """A formatted HTML table with a protocol line above it.

    The protocol is ``protocol`` or, when the table has a ``protocol`` column, its distinct
    values (the column is then dropped when it holds one value).  A cell's precision kind comes
    from its column name, or — for value columns of long / transposed tables — from the row's
    ``label_col`` (default ``metric`` when present).  Float columns of integers become counts.
    """
    d = df.copy()
    if protocol is None and "protocol" in d.columns:
        vals = [str(p) for p in d["protocol"].dropna().unique()]
        protocol = " | ".join(vals) if vals else "not stated"
        if len(vals) <= 1:
            d = d.drop(columns="protocol")
    label_col = label_col if label_col is not None else ("metric" if "metric" in d.columns else None)
    more = len(d) - max_rows
    d = d.head(max_rows)
    ints = set() if label_col else {c for c in d.columns if pd.api.types.is_float_dtype(d[c]) and d[c].notna().any()
                                    and bool(np.all(np.mod(d[c].dropna(), 1) == 0)) and not _PCT.search(str(c))
                                    and not _CORR.search(str(c))}
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in d.columns)
    rows = []
    for rec in d.to_dict("records"):
        cells = []
        for c in d.columns:
            v = rec[c]
            if c in ints:
                kind = "int"
            elif label_col and c != label_col and not (_PCT.search(str(c)) and not _CORR.search(str(c))):
                kind = value_kind(str(rec.get(label_col, "")))  # a value column of a long / transposed table
            else:
                kind = value_kind(str(c))
            num = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
            cells.append(f"<td{' class=num' if num else ''}>{html.escape(format_value(v, kind))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    note = f"<p class=more>{more} more rows in {html.escape(source)}</p>" if more > 0 else ""
    proto = f"<p class=protocol><b>Protocol:</b> {html.escape(protocol)}</p>" if protocol else ""
    return f"{proto}<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{note}\n"


def _png_uri(path: Path) -> str:
    from .viz.io import inline_png

    try:
        data = inline_png(path, max_width=900)
    except Exception:  # not an image PIL can read: embed the file as it is
        data = path.read_bytes()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _figure_names(run: Path) -> dict[str, bool]:
    """Figure name → whether a PNG exists: ``figures/_export.json`` plus PNGs found on disk."""
    from .workbook import export_status

    rec = (export_status(run) or {}).get("figures", {})
    names = {n: bool(v.get("png")) and (run / "figures" / f"{n}.png").is_file() for n, v in rec.items()}
    names.update({p.stem: True for p in (run / "figures").glob("*.png")})
    return dict(sorted(names.items()))


def _figure_html(run: Path, name: str, has_png: bool) -> str:
    if has_png:
        return (f"<figure><img class=fig src='{_png_uri(run / 'figures' / f'{name}.png')}' alt='{html.escape(name)}'>"
                f"<figcaption>{html.escape(name)} · interactive: figures/{html.escape(name)}.html</figcaption>"
                f"</figure>\n")
    return (f"<p class=missing>Figure {html.escape(name)}: no static image in this run (PNG export unavailable); "
            f"the interactive version is figures/{html.escape(name)}.html in the run directory.</p>\n")


def _panels(run: Path, figure_names: set[str]) -> dict[str, str]:
    """Image panels: ``figures/*.html`` that are not plotly figures → the inner HTML of their body."""
    out = {}
    for p in sorted((run / "figures").glob("*.html")):
        if p.stem in figure_names:
            continue
        text = p.read_text(errors="replace")
        if "plotly" in text[:5000].lower():
            continue
        m = re.search(r"<body[^>]*>(.*)</body>", text, re.S | re.I)
        out[p.stem] = m.group(1) if m else text
    return out


def _params_html(meta: dict) -> str:
    params = {**meta.get("parameters", {}), **meta.get("grid_point", {})}
    if not params and not meta:
        return "<p>No run.json: the parameters of this run were not recorded (notebooks run by hand).</p>"
    rows = [{"parameter": k, "value": ", ".join(map(str, v)) if isinstance(v, list) else str(v)}
            for k, v in sorted(params.items())]
    info = {k: meta.get(k) for k in ("status", "started", "finished", "vlmkit_version", "git_commit", "python")
            if meta.get(k)}
    out = "<p>" + " · ".join(f"<b>{html.escape(k)}</b>: {html.escape(str(v))}" for k, v in info.items()) + "</p>"
    out += table_html(pd.DataFrame(rows, columns=["parameter", "value"]), protocol="as given to vlmkit run (run.json)",
                      max_rows=500)
    nbs = [{"notebook": n, "status": e.get("status", "?"), "seconds": e.get("seconds"),
            "warnings": len(e.get("warnings", []))}
           for n, e in meta.get("notebooks", {}).items()]
    if nbs:
        out += table_html(pd.DataFrame(nbs), protocol="wall time of each executed notebook (run.json)")
    return out


def _markdown_inline(text: str) -> str:
    t = html.escape(text.strip().replace("\\|", "|"))
    t = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", t)  # links: their text only (no external references)
    t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", t)


def claims_html(claims_md: Path | None) -> str:
    """The markdown tables of the claims ledger (``docs/results.md``) as HTML tables, or a line
    saying the ledger has not been run yet."""
    if claims_md is None or not Path(claims_md).is_file():
        return "<p>Claims ledger: not run yet (no docs/results.md).</p>\n"
    lines, tables, cur = Path(claims_md).read_text().splitlines(), [], []
    for line in lines + [""]:
        if line.strip().startswith("|"):
            cur.append([c for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))])
        elif cur:
            tables.append(cur)
            cur = []
    if not tables:
        return f"<p>Claims ledger: {html.escape(str(claims_md))} holds no table yet.</p>\n"
    out = (f"<p class=protocol><b>Source:</b> {html.escape(Path(claims_md).name)} — the project's verdicts on "
           f"the papers' claims, not computed from this run.</p>")
    # the ledger's own caveats (markdown block quotes, e.g. that its verdicts predate the current defaults) travel
    # with it
    out += "".join(f"<p class=protocol>{_markdown_inline(line.lstrip('> ').strip())}</p>"
                   for line in lines if line.startswith(">") and line.lstrip("> ").strip())
    for rows in tables:
        body = [r for r in rows[1:] if not all(re.fullmatch(r"\s*:?-{2,}:?\s*", c) for c in r)]
        out += ("<table><thead><tr>" + "".join(f"<th>{_markdown_inline(c)}</th>" for c in rows[0])
                + "</tr></thead><tbody>"
                + "".join("<tr>" + "".join(f"<td>{_markdown_inline(c)}</td>" for c in r) + "</tr>" for r in body)
                + "</tbody></table>\n")
    return out


def default_claims_md() -> Path | None:
    """``docs/results.md`` of the checkout vlmkit runs from, when it exists (else None)."""
    p = CHECKOUT / "docs" / "results.md"
    return p if in_checkout() and p.is_file() else None


def _tables_of(run: Path, patterns: Sequence[str]) -> list[str]:
    names: list[str] = []
    for pat in patterns:
        names += [p.stem for p in sorted((run / "tables").glob(f"{pat}.csv")) if p.stem not in names]
    return names


def _section_table(run: Path, name: str) -> str:
    from .workbook import read_table

    t = read_table(run, name)
    if t is None or t.empty:
        return ""
    src, head = (f"tables/{name}.csv",
                 f"<h3>{html.escape(TABLE_TITLES.get(name, name))} "
                 f"<small>(tables/{html.escape(name)}.csv)</small></h3>")
    if name == "summary":  # wide, few rows: one row per metric, one column per method
        key = str(t.columns[0])
        t = t.set_index(key).T.reset_index().rename(columns={"index": "metric"})
        return head + table_html(t, protocol="in each metric's name (in brackets)", label_col="metric", source=src)
    if name == "retrieval" and {"metric", "method", "value"} <= set(t.columns):
        t, src = retrieval_wide(t), src + " (long form, every metric)"
        return head + table_html(t, label_col="metric", source=src)
    if name == "slerp_path" and "rank" in t.columns:
        t, src = t[t["rank"] == 1], src + " (rank 1 shown; every rank in the CSV)"
    return head + table_html(t, source=src)


def _status_phrase(meta: dict) -> str:
    """How the run stood when the report was written: 08 writes it while ``vlmkit run`` still
    runs (status "running"), so say which notebooks had finished rather than "running"."""
    status = str(meta.get("status", "unknown"))
    if status != "running":
        return f"status {html.escape(status)}"
    done = [n for n, e in (meta.get("notebooks") or {}).items() if e.get("status") == "ok"]
    return (f"written by the run itself, after {len(done)} notebook(s) had finished" if done
            else "written during the run")


def build_report(run_dir: str | os.PathLike, *, run_dirs: Sequence[str | os.PathLike] = (),
                 claims_md: Path | None = None) -> Path:
    """Write ``<run>/report/report.html`` atomically and return its path.

    Sections (:data:`vlmkit.report_text.SECTIONS`): primer, data, zero-shot vs fine-tuned
    retrieval, modality gap, mixed retrievals, uncertainty (VACSR Fig. 3 and the −score
    control), similarity histograms, reliability — each a narrative, its tables (protocol line
    each) and its figures (``figures/<NN>_*.png`` embedded; the ``08_*_table`` images, copies of
    the tables, are left out) — then any other figure, the run's parameters, warnings and skips
    (:func:`vlmkit.rundir.warnings_table` / ``skipped_table``), the claims ledger (``claims_md``) and,
    with ``run_dirs``, a table across runs (``vlmkit.workbook.summarise_runs``).
    """
    from .workbook import export_status, summarise_runs

    run = Path(run_dir)
    if not run.is_dir():
        raise VlmkitError(f"build_report: run directory {run} does not exist")
    meta = read_run_meta(run)
    figs = _figure_names(run)
    panels = _panels(run, set(figs))
    used: set[str] = set()
    parts = []
    for key, title, prefixes, tables in SECTIONS:
        mine = [n for n in figs if n.startswith(prefixes) and not (n.startswith("08_") and n.endswith("_table"))]
        body = "".join(_section_table(run, t) for t in _tables_of(run, tables))
        body += "".join(f"<div class=panel>{panels[p]}</div>" for p in panels if p.startswith(prefixes))
        body += "".join(_figure_html(run, n, figs[n]) for n in mine)
        used |= set(mine) | {p for p in panels if p.startswith(prefixes)}
        if not body:
            body = ("<p class=missing>Nothing for this section in this run (its notebook did not run, "
                    "or had nothing to show).</p>")
        parts.append(f"<section id={key}><h2>{html.escape(title)}</h2>"
                     f"<p class=narrative>{NARRATIVE[key]}</p>{body}</section>")
    rest = [n for n in figs if n not in used and not (n.startswith("08_") and n.endswith("_table"))]
    if rest:
        parts.append("<section id=other><h2>Other figures</h2>"
                     + "".join(_figure_html(run, n, figs[n]) for n in rest) + "</section>")
    if run_dirs:
        across = summarise_runs([run] + [Path(r) for r in run_dirs])
        parts.append("<section id=across><h2>Across runs</h2><p class=narrative>One row per run and method; "
                     "the parameters of each grid point first.</p>"
                     + table_html(across, protocol="as named in each column (tables/summary.csv of each run)")
                     + "</section>")
    parts.append(f"<section id=parameters><h2>Parameters</h2>{_params_html(meta)}</section>")
    for table, title, note in ((warnings_table(run), "Warnings",
                                "Warnings the notebooks emitted under vlmkit run (category, message, count, where)."),
                               (skipped_table(run), "Skipped items",
                                "Dataset items the loaders left out (count, first reason); see dataset.skipped.")):
        inner = table_html(table, protocol=note, max_rows=200) if len(table) else "<p>None recorded.</p>"
        parts.append(f"<section id={title.split()[0].lower()}><h2>{title}</h2>{inner}</section>")
    parts.append(f"<section id=claims><h2>Claims ledger</h2>{claims_html(claims_md)}</section>")
    export = export_status(run) or {}
    static = "" if export.get("static_figures", True) else f"<p class=missing>{html.escape(export.get('note', ''))}</p>"
    head = (f"<header><h1>vlmkit report · {html.escape(run.resolve().name)}</h1>"
            f"<p>Run directory {html.escape(str(run.resolve()))}; "
            f"{_status_phrase(meta)}; written {dt.datetime.now().isoformat(timespec='seconds')}.</p>"
            f"<p class=rule>{html.escape(PRECISION_RULE)} Every table states its protocol.</p>{static}</header>")
    return _write(run / "report" / "report.html", "vlmkit report", head + _toc(parts) + "".join(parts))


def _toc(parts: list[str]) -> str:
    items = [re.search(r"<section id=(\w+)><h2>([^<]*)</h2>", p) for p in parts]
    return "<nav>" + " · ".join(f"<a href='#{m.group(1)}'>{m.group(2)}</a>" for m in items if m) + "</nav>"


def _write(path: Path, title: str, body: str) -> Path:
    atomic_write_text(path, f"<!DOCTYPE html><html lang=en><head><meta charset='utf-8'>"
                            f"<title>{html.escape(title)}</title>"
                            f"<style>{CSS}</style></head><body>{body}</body></html>\n")
    return path


def build_grid_report(run_dirs: Sequence[str | os.PathLike], out: str | os.PathLike, *, sections: str = "") -> Path:
    """One comparison page across grid points: the parameters that differ between the runs,
    ``sections`` (HTML ``<section>``s placed next: the aggregates over seeds, figures and the
    partial grid of :meth:`vlmkit.batch.Batch.sections_html`), each grid point's summary table
    (``tables/summary.csv``, one row per metric), and every run's summary side by side
    (:func:`vlmkit.workbook.summarise_runs`).  ``out`` is the HTML file (or a folder, then
    ``out/report.html``); written atomically; returns its path."""
    from .workbook import summarise_runs

    runs = [Path(r) for r in run_dirs]
    if not runs:
        raise VlmkitError("build_grid_report: no run directories given")
    path = Path(out) if str(out).endswith(".html") else Path(out) / "report.html"
    metas = {r: read_run_meta(r) for r in runs}
    params = {r: {**m.get("parameters", {}), **m.get("grid_point", {})} for r, m in metas.items()}
    keys = sorted(set().union(*params.values()))
    show = lambda v: ", ".join(map(str, v)) if isinstance(v, list) else ("—" if v is None else str(v))  # noqa: E731
    differ = [k for k in keys if len({show(p.get(k)) for p in params.values()}) > 1]
    same = [k for k in keys if k not in differ]
    rows = [{"run": r.name, "status": metas[r].get("status", "unknown"), **{k: show(params[r].get(k)) for k in differ}}
            for r in runs]
    body = (f"<header><h1>vlmkit grid comparison · {len(runs)} grid points</h1><p class=rule>"
            f"{html.escape(PRECISION_RULE)} "
            "Every table states its protocol.</p></header>"
            "<section id=points><h2>Grid points and the parameters that differ</h2>"
            "<p class=narrative>One row per grid point (run directory); "
            "its own report is report/report.html inside it.</p>"
            + table_html(pd.DataFrame(rows), protocol="parameters as recorded in each run.json") +
            ("<p>Shared by every point: "
             + "; ".join(f"{html.escape(k)} = {html.escape(show(params[runs[0]].get(k)))}" for k in same) + "</p>"
             if same else "")
            + "</section>" + sections + "<section id=per-point><h2>Summary per grid point</h2>")
    for r in runs:
        label = ", ".join(f"{k} = {show(params[r].get(k))}" for k in differ) or r.name
        t = re.sub(r"^<h3>.*?</h3>", "", _section_table(r, "summary"))
        body += f"<h3>{html.escape(r.name)} ({html.escape(label)})</h3>" + (
            t or "<p class=missing>No summary: this run did not reach 08 (status "
                 f"{html.escape(str(metas[r].get('status', 'unknown')))}).</p>")
    across = summarise_runs(runs)
    body += ("</section><section id=across><h2>All grid points</h2>"
             + table_html(across, protocol="as named in each column (tables/summary.csv of each run)", max_rows=500)
             + "</section>")
    return _write(path, "vlmkit grid comparison", body)


def retrieval_wide(ret: pd.DataFrame) -> pd.DataFrame:
    """``tables/retrieval.csv`` (long) → one row per protocol, direction and metric (R@1/5/10,
    RSUM, mAP@R, R-P), one column per method."""
    wide = ret[ret.metric.isin(["R@1", "R@5", "R@10", "RSUM", "mAP@R", "R-P"])].pivot_table(
        index=["protocol", "direction", "metric"], columns="method", values="value", sort=False).reset_index()
    wide.columns.name = None
    return wide


def write_result_tables(run_dir: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Evaluate every registered method of the run on its test split and write
    ``tables/retrieval.csv`` (long: method, protocol, direction, metric, value …; COCO-5K-style
    R@K on the full split with one-to-one labels, ECCV-style mAP@R / R-P over the truth, and
    COCO-1K when the split is a multiple of 1,000 images) and ``tables/summary.csv``
    (:func:`vlmkit.workbook.method_summary`).  Returns (the retrieval table pivoted wide: one
    row per protocol, direction and metric, one column per method; the summary)."""
    from .metrics import evaluate_similarity
    from .metrics.streaming import truth_from_codes
    from . import workbook as wb

    run = Path(run_dir)
    ds = wb.run_dataset(run)
    protocols = ("coco5k", "eccv") + (("coco1k",) if ds.num_images % 1000 == 0 and ds.num_images > 1000 else ())
    # the truth once per run (sparse, from the pair codes 05–07 share), not once per method
    truth = truth_from_codes(wb.pair_codes(run, ds)) if ds.has_extended_positives and wb.list_methods(run) else None
    frames = []
    for name in wb.list_methods(run):
        m = wb.load_method(run, name)  # score / σ² matrices memory-mapped: evaluated in row blocks
        frames.append(evaluate_similarity(m["scores"], ds.caption_image, positives=truth,
                                          protocols=protocols, uncertainty=m["uncertainty"], method=name))
    if not frames:
        raise VlmkitError(f"{run}/methods.json lists no method: run 01_data_and_model (and 02) with this run_dir first")
    ret = pd.concat(frames, ignore_index=True)
    wb.write_table(run, "retrieval", ret)
    wide = retrieval_wide(ret)
    summary = wb.method_summary(run)
    wb.write_table(run, "summary", summary)
    return wide, summary
