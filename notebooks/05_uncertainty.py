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

from vlmkit import measurements, viz
from vlmkit import workbook as wb
from vlmkit.metrics.streaming import pair_type_histogram, truth_from_codes

run = wb.prepare_run_dir(run_dir)
HEADLESS = wb.headless()  # papermill / vlmkit run: no widgets (figures are embedded either way)
ds = wb.run_dataset(run)
truth = wb.truth_protocol(ds)  # what "correct" / "true" means on this data
with_unc = [k for k, v in wb.list_methods(run).items() if v.get("has_uncertainty")]
print("methods with uncertainty:", with_unc)
# every pair's type, once per run (int8, memory-mapped), and the truth as a sparse matrix; the
# score and σ² matrices are memory-mapped too: every statistic below reads them in row blocks
codes = wb.pair_codes(run, ds) if (with_unc and ds.has_extended_positives) else None
P = truth_from_codes(codes) if codes is not None else None

# %%
frames = []
for name in with_unc:
    m = wb.load_method(run, name)
    details = {}
    fig3 = measurements.fig3_summary(m["scores"], m["uncertainty"], ds.caption_image, P, n_bins=n_bins, n_boot=n_boot,
                                     truth_name=truth, details=details)
    rep = details["report"]
    for part in ("summary", "bins", "strata", "ranking"):  # each row's protocol: "labels" (one-to-one, the paper's) or the truth
        wb.write_table(run, f"fig3_{part}_{name}", rep[part])
    for d in ("i2t", "t2i"):
        wb.show(viz.fig3_figure(rep, d, title=f"{name} ({ds.name})"), run, f"05_fig3_{name}_{d}")
    display(rep["summary"].round(3))
    frames.append(fig3.assign(method=name))
    if P is not None:
        frames.append(measurements.fn_auroc(m["uncertainty"], m["scores"], ds.caption_image, P, truth_name=truth).assign(method=name))
if with_unc:
    unc = pd.concat(frames, ignore_index=True)
    unc = unc[["method"] + [c for c in unc.columns if c != "method"]]
    wb.write_table(run, "uncertainty", unc)  # each row's protocol column says what it measures
    print(unc.drop(columns="protocol").to_string())
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
    rng = measurements.sigma2_by_pair_type(m["uncertainty"], ds.caption_image, P, codes=codes, truth_name=truth)
    wb.write_table(run, f"sigma2_range_{name}", rng.assign(protocol=f"{name}: " + rng.protocol + f" ({ds.name})"))
    display(rng.drop(columns="protocol").round(4))
    hist = pair_type_histogram(m["uncertainty"], ds, codes=codes, name="uncertainty")  # streamed over row blocks
    wb.show(viz.pair_type_histogram_figure(hist, title=f"{name}: σ² by pair type ({ds.name}, true = {truth})", x_label="σ² (uncertainty)"),
            run, f"05_sigma2_hist_{name}")

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
                                                  title=f"{name}: false negatives by σ² ({ds.name}, true = {truth})", codes=codes),
                  run, f"05_false_negatives_{name}")
