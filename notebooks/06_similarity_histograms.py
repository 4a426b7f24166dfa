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
# # 06 · Similarity by pair type
#
# One-to-one labels call every other caption a negative; the exact truth (or user-given extended
# positives) splits those into **false negatives** (the caption is true of the image) and **true
# negatives**. On data with only one-to-one labels there are no false negatives to show. A good
# model scores false negatives like positives — and a loss that pushes them down hurts.

# %% tags=["parameters"]
run_dir: str = "runs/interactive"  # the run directory every notebook reads and writes
bins: int = 80  # histogram bins (every pair is counted, in row blocks of the score matrix)
n_gallery: int = 8  # false negatives shown per method (and half as many true negatives for contrast)

# %%
import pandas as pd

from vlmkit import viz
from vlmkit import workbook as wb
from vlmkit.metrics.streaming import PAIR_TYPES, pair_type_histogram

run = wb.prepare_run_dir(run_dir)
HEADLESS = wb.headless()  # papermill / vlmkit run: no widgets (figures are embedded either way)
ds = wb.run_dataset(run)
reg = wb.list_methods(run)
truth = wb.truth_protocol(ds)
codes = wb.pair_codes(run, ds)  # every pair's type by labels and truth, once per run (int8 memmap; the truth is the slow part)

# %%
rows = []
for name, info in reg.items():
    m = wb.load_method(run, name)
    kind = "VACSR logit μ" if info.get("score_kind") == "logit" else "cosine similarity"
    hist = pair_type_histogram(m["scores"], ds, bins=bins, codes=codes)  # streamed over row blocks: no N×M copy
    fig = viz.pair_type_histogram_figure(hist, title=f"{name}: {kind} by pair type ({ds.name}, {truth})", x_label=kind)
    wb.show(fig, run, f"06_similarity_{name}")
    for k, label in enumerate(PAIR_TYPES):
        rows.append({"method": name, "pair_type": label, "n": int(hist.n[k]), "mean": float(hist.means[k])})
tab = pd.DataFrame(rows)
wb.write_table(run, "similarity_by_type", tab, protocol=f"mean score per pair type over all {ds.num_images}x{ds.num_captions} pairs, pair type by one-to-one labels and {truth}")
print(tab.to_string())

# %% [markdown]
# ## False negatives, seen
# Per method: the pairs the one-to-one labels call negative but the truth calls true, by the
# method's uncertainty σ² (highest first) — or by its score (highest first) where it has none —
# and for contrast the true negatives ranked the same way.

# %%
if not ds.has_extended_positives:
    print(f"note: {ds.name} has only one-to-one labels (no extended positives): no false negatives to show")
for name in (reg if ds.has_extended_positives else []):
    m = wb.load_method(run, name)
    by = "σ²" if m["uncertainty"] is not None else "score"
    viz.show_html(viz.false_negative_gallery_html(ds, m["scores"], m["uncertainty"], n=n_gallery, n_contrast=n_gallery // 2,
                                                  title=f"{name}: false negatives by {by} ({ds.name}, true = {truth})", codes=codes),
                  run, f"06_false_negatives_{name}")
