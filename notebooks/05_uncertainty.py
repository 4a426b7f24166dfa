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
# # 05 · Uncertainty vs accuracy (VACSR)
#
# VACSR Fig. 3: per query, the uncertainty of its top-1 pair; 10 equal-width bins; R@1 per
# bin; Pearson r (the paper reports r ≈ −0.93). Correct = the top-1 is *true*: exact truth on the
# embedded data, extended positives where given, else the one-to-one labels (each table says which).
# Also: do false negatives get higher uncertainty than true negatives (AUROC)?

# %% tags=["parameters"]
run_dir: str = "runs/interactive"  # the run directory every notebook reads and writes
n_bins: int = 10  # equal-width uncertainty bins
query: int = 0  # query shown by the query picker (an image for i2t, a caption for t2i)
k: int = 10  # items shown per query

# %%
import pandas as pd
from IPython.display import display

from vlmkit import analysis, viz
from vlmkit import workbook as wb
from vlmkit.metrics import false_negative_auroc, top1_uncertainty, uncertainty_bins, uncertainty_correlation

run = wb.prepare_run_dir(run_dir)
HEADLESS = wb.headless()  # papermill / vlmkit run: no widgets (figures are embedded either way)
ds = wb.run_dataset(run)
truth = wb.truth_protocol(ds)  # what "correct" / "true" means on this data
with_unc = [k for k, v in wb.list_methods(run).items() if v.get("has_uncertainty")]
print("methods with uncertainty:", with_unc)

# %%
rows = []
P = ds.positives()
for name in with_unc:
    m = wb.load_method(run, name)
    for d, S, U, Pd in (("i2t", m["scores"], m["uncertainty"], P), ("t2i", m["scores"].T, m["uncertainty"].T, P.T)):
        u, ok = top1_uncertainty(S, Pd, U)
        bins = uncertainty_bins(u, ok, n_bins)
        c = uncertainty_correlation(u, ok, n_bins)
        rows.append({"method": name, "direction": d, "pearson": c["pearson"], "spearman": c["spearman"], "n_queries": c["n_queries"]})
        wb.write_table(run, f"uncertainty_bins_{name}_{d}", bins, protocol=f"top-1 uncertainty bins, correct = {truth}, {ds.name}")
        wb.show(viz.uncertainty_figure(bins, c["pearson"], title=f"{name} {d}: R@1 per uncertainty bin ({ds.name}, {truth})"), run, f"05_uncertainty_{name}_{d}")
    if ds.has_extended_positives:
        a = false_negative_auroc(m["uncertainty"], ds.caption_image, P)
        rows.append({"method": name, "direction": "pairs", "fn_auroc": a["auroc"], "n_queries": a["n_false_negatives"]})
unc = pd.DataFrame(rows)
if with_unc:
    wb.write_table(run, "uncertainty", unc, protocol=f"uncertainty–R@1 Pearson r over {n_bins} bins, correct = {truth}; FN AUROC over all unlabelled pairs ({ds.name})")
    print(unc.to_string())
else:
    print("note: no method with uncertainty in this run (VACSR was not trained); nothing to show")


# %% [markdown]
# ## Query picker: a query's top-K with scores, uncertainties and truth
# In JupyterLab: pick the method, the direction and the query. Headless: query `query` is saved as a table.

# %%
def topk_table(name, direction, q):
    m = wb.load_method(run, name)
    S, U = m["scores"], m["uncertainty"]
    L, T = ds.labels(), P
    if direction == "t2i":
        S, U, L, T = S.T, (U.T if U is not None else None), L.T, T.T
    t = analysis.query_topk(S, q, k=k, uncertainty=U, labels=L, truth=T)
    t["item"] = [f"image {i}" for i in t["index"]] if direction == "t2i" else [ds.captions[i] for i in t["index"]]
    return t

if with_unc:
    pick = topk_table(with_unc[0], "i2t", query)
    wb.write_table(run, "query_topk", pick, protocol=f"{with_unc[0]}: top-{k} captions of image {query}, labels = one-to-one, true = {truth}")
    print(pick.to_string())
if with_unc and not HEADLESS:
    import ipywidgets as W
    W.interact(lambda method, direction, q: display(topk_table(method, direction, q)),
               method=W.Dropdown(options=list(wb.list_methods(run))), direction=W.Dropdown(options=["i2t", "t2i"]),
               q=W.IntText(value=query, description="query"))
