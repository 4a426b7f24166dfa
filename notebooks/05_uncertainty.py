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
# VACSR Fig. 3 under **the paper's protocol first**: per query, the uncertainty σ² of its top-1
# pair; 10 equal-width bins; R@1 per bin under the **one-to-one labels** (COCO's binary labels);
# Pearson r with a bootstrap 95 % interval (the paper: −0.931 i→t, −0.903 t→i). Beside it the
# **control** — the same bins with uncertainty := −score — so you see at once whether σ² says
# anything the score does not. Then the exact-truth view (a top-1 false negative counts as
# correct), equal-count bins, the AUROC of σ² for top-1 errors within score strata, Appendix H's
# ranking view (mean σ² over the top-k vs AP@R), and whether false negatives get higher
# uncertainty than true negatives (AUROC) — **beside the AUROC of the score itself** (the
# control: the score alone already ranks many false negatives above true negatives). Last,
# σ²'s range and histogram per pair type (positive / false negative / true negative), so a
# narrow σ² is visible. Every table names its protocol.
#
# σ² here is VACSR's as the paper defines it (§3.2, "uncertainty in latent variables"): the
# sigmoid-normalised variance of the pair's latent components, averaged over the latent
# dimensions and weighted by the mixing weights α (`vlmkit.vacsr.adapter.latent_uncertainty`).
# Ablations (e.g. `vacsr-hetero`, σ² a decoder output) appear under their own names.

# %% tags=["parameters"]
run_dir: str = "runs/interactive"  # the run directory every notebook reads and writes
n_bins: int = 10  # uncertainty bins (equal-width as in the paper; equal-count shown too)
n_boot: int = 200  # bootstrap resamples for the 95 % interval of Pearson r (0: none)
query: int = 0  # query shown by the query picker (an image for i2t, a caption for t2i)
k: int = 10  # items shown per query
n_gallery: int = 12  # false negatives shown per method (and half as many true negatives for contrast)

# %%
import pandas as pd
from IPython.display import display

from vlmkit import viz
from vlmkit import workbook as wb
from vlmkit.metrics import false_negative_auroc_with_control, uncertainty_by_pair_type
from vlmkit.vacsr import fig3_report
from vlmkit.vacsr.fig3 import LABELS, TRUTH

run = wb.prepare_run_dir(run_dir)
HEADLESS = wb.headless()  # papermill / vlmkit run: no widgets (figures are embedded either way)
ds = wb.run_dataset(run)
truth = wb.truth_protocol(ds)  # what "correct" / "true" means on this data
with_unc = [k for k, v in wb.list_methods(run).items() if v.get("has_uncertainty")]
print("methods with uncertainty:", with_unc)

# %%
rows, P = [], ds.positives()
for name in with_unc:
    m = wb.load_method(run, name)
    rep = fig3_report(m["scores"], m["uncertainty"], ds.labels(), P if ds.has_extended_positives else None, n_bins=n_bins, n_boot=n_boot)
    for part in ("summary", "bins", "strata", "ranking"):  # each row's protocol: "labels" (one-to-one, the paper's) or the truth
        wb.write_table(run, f"fig3_{part}_{name}", rep[part])
    summ = rep["summary"].set_index(["direction", "protocol", "source", "binning"])
    for d in ("i2t", "t2i"):
        wb.show(viz.fig3_figure(rep, d, title=f"{name} ({ds.name})"), run, f"05_fig3_{name}_{d}")
        r = {"method": name, "direction": d,
             "pearson": summ.loc[(d, LABELS, "sigma2", "width"), "pearson_r"],
             "pearson_ci": f"[{summ.loc[(d, LABELS, 'sigma2', 'width'), 'ci_low']:.2f}, {summ.loc[(d, LABELS, 'sigma2', 'width'), 'ci_high']:.2f}]",
             "pearson_control": summ.loc[(d, LABELS, "-score", "width"), "pearson_r"]}
        if ds.has_extended_positives:
            r["pearson_truth"] = summ.loc[(d, TRUTH, "sigma2", "width"), "pearson_r"]
        rows.append(r)
    display(rep["summary"].round(3))
    if ds.has_extended_positives:
        a = false_negative_auroc_with_control(m["uncertainty"], m["scores"], ds.caption_image, P).set_index("source")
        rows.append({"method": name, "direction": "pairs", "fn_auroc": a.loc["sigma2", "auroc"],
                     "fn_auroc_control": a.loc["score", "auroc"], "n_queries": int(a.loc["sigma2", "n_false_negatives"])})
unc = pd.DataFrame(rows)
if with_unc:
    wb.write_table(run, "uncertainty", unc, protocol=f"Pearson r of bin R@1 vs bin-mean top-1 uncertainty, {n_bins} equal-width bins: pearson = σ², correct = one-to-one "
                   f"labels (the paper's Fig. 3); pearson_control = −score, same labels; pearson_truth = σ², correct = {truth}; "
                   f"fn_auroc = AUROC of σ² for false vs true negatives over all unlabelled pairs, fn_auroc_control = the same "
                   f"AUROC of the score itself (σ² adds information only above it); n_queries = false negatives ({ds.name})")
    print(unc.to_string())
else:
    print("note: no method with uncertainty in this run (VACSR was not trained); nothing to show")


# %% [markdown]
# ## σ² by pair type: range and histogram
# Every test pair's σ², split into labelled positives, false negatives (true but unlabelled) and
# true negatives: the range table (5 %–95 % and min–max) shows how wide σ² is at all — a σ² that
# spans 0.01 can still rank pairs perfectly but says little in absolute terms — and the
# histograms show where the false negatives sit between positives and true negatives.

# %%
for name in (with_unc if ds.has_extended_positives else []):
    m = wb.load_method(run, name)
    rng = uncertainty_by_pair_type(m["uncertainty"], ds.caption_image, P)
    wb.write_table(run, f"sigma2_range_{name}", rng, protocol=f"{name}: σ² over all test pairs by pair type, "
                   f"positive = one-to-one label, false negative = unlabelled but true ({truth}), true negative = neither ({ds.name})")
    display(rng.round(4))
    wb.show(viz.similarity_histogram(m["uncertainty"], ds.labels(), P, x_label="σ² (uncertainty)",
                                     title=f"{name}: σ² by pair type ({ds.name}, true = {truth})"), run, f"05_sigma2_hist_{name}")

# %% [markdown]
# ## Query picker: a query's top-K with scores, uncertainties and truth
# The query image (i→t) or caption (t→i) and its top-K, each framed as **labelled positive**
# (the one-to-one label), **false negative** (labelled negative but true) or **negative**, with
# score and σ². In JupyterLab: pick the method, the direction and the query. Headless: query
# `query` of the first method with uncertainty (else the first method), also saved as a table.

# %%
reg = wb.list_methods(run)
pick_method = with_unc[0] if with_unc else next(iter(reg))
pm = wb.load_method(run, pick_method)
pick = viz.query_table(ds, pm["scores"], pm["uncertainty"], "i2t", query, k)
wb.write_table(run, "query_topk", pick, protocol=f"{pick_method}: top-{k} captions of image {query}, labels = one-to-one, true = {truth}")
viz.show_html(viz.query_results_html(ds, pick, "i2t", query, title=f"{pick_method}: top-{k} captions of image {query} (true = {truth})"),
              run, "05_query")
if not HEADLESS:
    def _scores(name):
        b = wb.load_method(run, name)
        return b["scores"], b["uncertainty"]
    display(viz.query_picker(ds, _scores, list(reg), query=query, k=k).widget)

# %% [markdown]
# ## False-negative gallery
# The pairs the one-to-one labels call negative but the truth calls true, by the method's σ²
# (highest first) — what VACSR claims to do is give these the highest uncertainty. Below each,
# for contrast, the true negatives with the highest σ².

# %%
if not ds.has_extended_positives:
    print(f"note: {ds.name} has only one-to-one labels (no extended positives): no false negatives to show")
for name in (with_unc if ds.has_extended_positives else []):
    m = wb.load_method(run, name)
    viz.show_html(viz.false_negative_gallery_html(ds, m["scores"], m["uncertainty"], n=n_gallery, n_contrast=n_gallery // 2,
                                                  title=f"{name}: false negatives by σ² ({ds.name}, true = {truth})"),
                  run, f"05_false_negatives_{name}")
