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
# Reliability diagrams of top-1 retrieval: confidence = softmax over the gallery at temperature
# τ (cosine methods) or sigmoid(μ) (VACSR); ECE over 15 equal-width bins. Two protocols:
# **one-to-one labels** (correct = the top-1 is the labelled match, as in the m²-Mix paper's
# Table 3; the summary's ECE) and, where the data has it, the **truth** (exact truth on the
# embedded data: correct = the top-1 is true), its own column.

# %% tags=["parameters"]
run_dir: str = "runs/interactive"  # the run directory every notebook reads and writes
temperature: float = 0.01  # softmax temperature for cosine-similarity confidences
n_bins: int = 15  # reliability bins

# %%
import pandas as pd

from vlmkit import viz
from vlmkit import workbook as wb
from vlmkit.metrics import retrieval_calibration

run = wb.prepare_run_dir(run_dir)
HEADLESS = wb.headless()  # papermill / vlmkit run: no widgets (figures are embedded either way)
ds = wb.run_dataset(run)
reg = wb.list_methods(run)
truth = wb.truth_protocol(ds)
protocols = {"labels": ("one-to-one labels", ds.labels())}
if ds.has_extended_positives:
    protocols["truth"] = (truth, ds.positives())

# %%
rows = []
for name, info in reg.items():
    m = wb.load_method(run, name)
    conf = "sigmoid" if info.get("score_kind") == "logit" else "softmax"
    for d in ("i2t", "t2i"):
        S = m["scores"] if d == "i2t" else m["scores"].T
        row = {"method": name, "direction": d, "confidence": conf if conf == "sigmoid" else f"softmax τ={temperature}", "truth": truth}
        for key, (label, C) in protocols.items():
            ece, bins = retrieval_calibration(S, C if d == "i2t" else C.T, confidence=conf, temperature=temperature, n_bins=n_bins)
            row[f"ece_{key}"] = 100 * ece
            suffix = "" if key == "labels" else "_truth"
            wb.show(viz.reliability_figure(bins, ece, title=f"{name} {d} ({ds.name}, top-1, correct = {label})"), run, f"07_reliability_{name}_{d}{suffix}")
        rows.append(row)
cal = pd.DataFrame(rows)
wb.write_table(run, "calibration", cal, protocol=f"ECE (%) of top-1 retrieval, {n_bins} bins; ece_labels: correct = one-to-one labels; "
                                                 f"ece_truth: correct = {truth} ({ds.name})")
print(cal.to_string())

# %%
if not HEADLESS:
    import ipywidgets as W
    W.interact(lambda method: print(cal[cal.method == method]), method=W.Dropdown(options=list(reg)))
