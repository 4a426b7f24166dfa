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

from vlmkit import measurements, viz
from vlmkit import workbook as wb
from vlmkit.metrics.streaming import truth_from_codes

run = wb.prepare_run_dir(run_dir)
HEADLESS = wb.headless()  # papermill / vlmkit run: no widgets (figures are embedded either way)
ds = wb.run_dataset(run)
reg = wb.list_methods(run)
truth = wb.truth_protocol(ds)
P = truth_from_codes(wb.pair_codes(run, ds)) if ds.has_extended_positives else None  # the truth, sparse
taus = {name: wb.method_temperature(reg, name, temperature) for name in reg}

# %% [markdown]
# ## Both views, per method and direction
# First the authors' protocol (`ece_authors`: one caption per image, N × N, correct = the diagonal),
# then the gallery view (`ece_labels`, `ece_truth`: every caption, the whole gallery).

# %%
frames = []
for name, info in reg.items():
    m = wb.load_method(run, name)
    conf = "sigmoid" if info.get("score_kind") == "logit" else "softmax"
    details = {}
    cal = measurements.calibration(m["scores"], ds.caption_image, P, tau=taus[name], n_bins=n_bins, confidence=conf,
                                   truth_name=truth, details=details)
    for (view, d), bins in details["bins"].items():
        row = cal.set_index("direction").loc[d]
        if view == "authors":
            title, fig = f"{name} {d} — authors' protocol ({ds.name}, first caption, N×N, τ={taus[name]:.3g})", f"07_reliability_{name}_{d}"
        else:
            label = "one-to-one labels" if view == "labels" else truth
            title = f"{name} {d} — gallery view ({ds.name}, every caption, correct = {label})"
            fig = f"07_reliability_gallery_{name}_{d}" + ("" if view == "labels" else "_truth")
        wb.show(viz.reliability_figure(bins, row[f"ece_{view}"] / 100, title=title), run, fig)
    frames.append(cal.assign(method=name, truth=truth))
cal = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
if len(cal):
    cal = cal[["protocol", "method"] + [c for c in cal.columns if c not in ("protocol", "method")]]
    cal["protocol"] = cal["protocol"] + f" ({ds.name})"
wb.write_table(run, "calibration", cal)
print(cal.drop(columns="protocol", errors="ignore").to_string())

# %%
if not HEADLESS:
    import ipywidgets as W
    W.interact(lambda method: print(cal[cal.method == method]), method=W.Dropdown(options=list(reg)))
