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
# # 07 · Calibration
#
# Reliability diagrams of top-1 retrieval, ECE over `n_bins` equal-width bins, in two views.
#
# **The authors' protocol first** (m²-Mix Tab. 3; docs/design.md): one caption per image (its first), so
# a square N × N similarity with the diagonal as the positive; per query the softmax of S/τ over
# the N candidates; confidence = the top-1 probability; correct = the top-1 is the diagonal item.
# τ is the model's own learned temperature (the authors' 0.01 is CLIP's), or `temperature` when set;
# VACSR's logit scores take τ = 1.
#
# **The gallery view beside it**: every caption in the gallery (N × 5N), softmax over the whole
# gallery at the same τ (cosine methods) or sigmoid(μ) (VACSR); correct = the labelled match
# (one-to-one labels) and, where the data has it, true under the data's **truth**, its own column.
#
# Under each diagram, the histogram of the queries' top-1 confidences: an empty range of
# confidence shows as empty, not as a missing bar.

# %% tags=["parameters"]
run_dir: str = "runs/interactive"  # the run directory every notebook reads and writes
temperature: float = 0.0  # softmax τ for cosine scores; 0: each method's own learned τ (recorded by 01/02)
n_bins: int = 15  # reliability bins

# %%
import pandas as pd

from vlmkit import viz
from vlmkit import workbook as wb
from vlmkit.metrics import AUTHORS_PROTOCOL, GALLERY_PROTOCOL, authors_calibration, retrieval_calibration

run = wb.prepare_run_dir(run_dir)
HEADLESS = wb.headless()  # papermill / vlmkit run: no widgets (figures are embedded either way)
ds = wb.run_dataset(run)
reg = wb.list_methods(run)
truth = wb.truth_protocol(ds)
protocols = {"labels": ("one-to-one labels", ds.labels())}
if ds.has_extended_positives:
    protocols["truth"] = (truth, ds.positives())
taus = {name: wb.method_temperature(reg, name, temperature) for name in reg}

# %% [markdown]
# ## Both views, per method and direction
# First the authors' protocol (`ece_authors`: one caption per image, N × N, correct = the diagonal),
# then the gallery view (`ece_labels`, `ece_truth`: every caption, the whole gallery).

# %%
rows = []
for name, info in reg.items():
    m = wb.load_method(run, name)
    conf = "sigmoid" if info.get("score_kind") == "logit" else "softmax"
    square = authors_calibration(m["scores"], ds.caption_image, tau=taus[name], n_bins=n_bins)
    for d in ("i2t", "t2i"):
        c = square[d]
        wb.show(viz.reliability_figure(c.bins, c.ece, title=f"{name} {d} — authors' protocol ({ds.name}, first caption, N×N, τ={taus[name]:.3g})"),
                run, f"07_reliability_{name}_{d}")
        row = {"method": name, "direction": d, "tau": taus[name], "ece_authors": 100 * c.ece, "confidence_authors": c.mean_confidence,
               "accuracy_authors": c.accuracy, "confidence": conf if conf == "sigmoid" else f"softmax τ={taus[name]:.3g}", "truth": truth}
        S = m["scores"] if d == "i2t" else m["scores"].T
        for key, (label, C) in protocols.items():
            ece, bins = retrieval_calibration(S, C if d == "i2t" else C.T, confidence=conf, temperature=taus[name], n_bins=n_bins)
            row[f"ece_{key}"] = 100 * ece
            suffix = "" if key == "labels" else "_truth"
            wb.show(viz.reliability_figure(bins, ece, title=f"{name} {d} — gallery view ({ds.name}, every caption, correct = {label})"),
                    run, f"07_reliability_gallery_{name}_{d}{suffix}")
        rows.append(row)
cal = pd.DataFrame(rows)
wb.write_table(run, "calibration", cal, protocol=f"ECE (%) of top-1 retrieval, {n_bins} equal-width bins; ece_authors: {AUTHORS_PROTOCOL}; "
                                                 f"ece_labels / ece_truth: {GALLERY_PROTOCOL}, correct = one-to-one labels / "
                                                 f"{truth} ({ds.name})")
print(cal.to_string())

# %%
if not HEADLESS:
    import ipywidgets as W
    W.interact(lambda method: print(cal[cal.method == method]), method=W.Dropdown(options=list(reg)))
