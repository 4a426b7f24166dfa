# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 08 · Report
#
# Retrieval under the standard protocols (each table names its protocol), the gap, calibration
# and uncertainty per method — and, given several `run_dirs`, the same across methods, seeds
# and noise ratios.

# %% tags=["parameters"]
run_dir: str = "runs/interactive"  # the run directory every notebook reads and writes
run_dirs: list = []  # other run directories to compare with this one (batch report)

# %%
from pathlib import Path

import pandas as pd

from vlmkit import viz
from vlmkit import workbook as wb
from vlmkit.metrics import evaluate_similarity
from vlmkit.utils import atomic_write_text

run = wb.prepare_run_dir(run_dir)
HEADLESS = wb.headless()  # papermill / vlmkit run: no widgets (figures are embedded either way)
ds = wb.run_dataset(run)
truth = wb.truth_protocol(ds)
ranked = f"ECCV-style = mAP@R/R-P over {truth}" if ds.has_extended_positives else "ECCV-style = mAP@R/R-P over the one-to-one labels (no extended truth)"
reg = wb.list_methods(run)
protocols = ("coco5k", "eccv") + (("coco1k",) if ds.num_images % 1000 == 0 and ds.num_images > 1000 else ())

# %%
frames = []
for name in reg:
    m = wb.load_method(run, name)
    frames.append(evaluate_similarity(m["scores"], ds.caption_image, positives=ds if ds.has_extended_positives else None,
                                      protocols=protocols, uncertainty=m["uncertainty"], method=name))
ret = pd.concat(frames, ignore_index=True)
wb.write_table(run, "retrieval", ret)
wide = ret[ret.metric.isin(["R@1", "R@5", "R@10", "RSUM", "mAP@R", "R-P"])].pivot_table(index=["protocol", "direction", "metric"], columns="method", values="value").reset_index()
wb.show(viz.table_figure(wide, title=f"Retrieval on {ds.name} — protocol per row ('full NxM': one-to-one labels; {ranked})"), run, "08_retrieval_table")
print(wide.to_string())

# %%
summary = wb.method_summary(run)
wb.write_table(run, "summary", summary)
wb.show(viz.table_figure(summary, title=f"Summary per method ({ds.name}; protocol in each column name)"), run, "08_summary_table")
print(summary.T.to_string())

# %%
sections = [viz.table_html(summary, "Summary per method", f"{ds.name}; protocol in each column name."),
            viz.table_html(wide, "Retrieval", f"Protocol per row: 'full NxM' = R@K on the whole test split with one-to-one labels; {ranked}.")]
for name, note in (("gap", "Centroid distance of unit test embeddings."), ("calibration", f"ECE (%) of top-1 retrieval; ece_labels: correct = the one-to-one label; ece_truth: correct = {truth}."),
                   ("uncertainty", "VACSR Fig. 3: Pearson r of bin R@1 vs bin-mean top-1 σ²; pearson = one-to-one labels (the paper's protocol), pearson_control = the same bins with −score, pearson_truth = against the dataset's truth; fn_auroc = σ² of false vs true negatives."), ("census", "False negatives created by one-to-one labels."),
                   ("hardness", "Cosine of anchor image to original vs mixed negatives.")):
    t = wb.read_table(run, name)
    if t is not None:
        sections.append(viz.table_html(t, name, note))
from vlmkit.cli import skipped_table, warnings_table  # what vlmkit run recorded in run.json (00–07)
for table, title, note in ((warnings_table(run), "Warnings", "Warnings the notebooks emitted under vlmkit run (category, message, count, where)."),
                           (skipped_table(run), "Skipped items", "Dataset items the loaders left out (count, first reason); see dataset.skipped.")):
    sections.append(viz.table_html(table, title, note) if len(table) else f"<h2>{title}</h2><p>None recorded.</p>")
    if len(table):
        print(f"{title}:", table.to_string(), sep="\n")
if run_dirs:
    across = wb.summarise_runs([run] + [Path(r) for r in run_dirs])
    wb.write_table(run, "across_runs", across)
    sections.insert(0, viz.table_html(across, "Across runs", "One row per run and method; parameters of each grid point first."))
figs = sorted(p.name for p in (run / "figures").glob("*.html"))
links = "<h2>Figures</h2><ul>" + "".join(f"<li><a href='../figures/{f}'>{f}</a></li>" for f in figs) + "</ul>"
atomic_write_text(run / "report" / "report.html", "<html><head><meta charset='utf-8'><title>vlmkit report</title></head><body><h1>vlmkit report</h1>"
                                            + "".join(sections) + links + "</body></html>")
print("report:", run / "report" / "report.html")
