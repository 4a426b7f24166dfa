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
# # 03 · The modality gap
#
# The gap Δ = centroid(images) − centroid(captions) of each method's test embeddings, the two
# clouds in 2-D/3-D (PCA of the union, UMAP optional), and the **embedding-shift experiment**:
# move both clouds along Δ, renormalise, and watch the gap, R@1 and the contrastive loss.

# %% tags=["parameters"]
run_dir: str = "runs/interactive"  # the run directory every notebook reads and writes
projection: str = "pca"  # pca, umap or both
max_points: int = 1500  # images plotted per projection (their captions come along)
shifts: list = [-0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0]  # shift amounts (1 makes the centroids meet)
temperature: float = 0.0  # τ of the contrastive loss in the shift experiment; 0: each method's own learned τ
seed: int = 0  # subsampling seed
explore_method: str = "pretrained"  # the method whose points are shown with their nearest neighbours
n_examples: int = 3  # images shown with their neighbours headless (plus one caption)

# %%
import numpy as np
import pandas as pd
from IPython.display import display

from vlmkit import analysis, viz
from vlmkit import workbook as wb
from vlmkit.metrics import modality_gap

run = wb.prepare_run_dir(run_dir)
HEADLESS = wb.headless()  # papermill / vlmkit run: no widgets (figures are embedded either way)
ds = wb.run_dataset(run)
methods = {k: v for k, v in wb.list_methods(run).items() if v.get("has_features")}
print("methods with features:", list(methods))

# %%
rows = []
for name in methods:
    m = wb.load_method(run, name)
    rows.append({"method": name, "gap": modality_gap(m["img"], m["txt"]).distance, **analysis.cone_stats(m["img"][:500], m["txt"][:500])})
gaps = pd.DataFrame(rows)
wb.write_table(run, "gap", gaps[["method", "gap"]], protocol=f"centroid distance of unit test embeddings, {ds.name}")
wb.show(viz.gap_bar_figure(gaps, title=f"Modality gap per method ({ds.name} test)"), run, "03_gap_per_method")
print(gaps.to_string())

# %%
keep, caps = viz.subsample_pairs(ds.num_images, ds.caption_image, max_points, seed)
remap = -np.ones(ds.num_images, dtype=int); remap[keep] = np.arange(len(keep))
kinds = ["pca", "umap"] if projection == "both" else [projection]
for name in methods:
    m = wb.load_method(run, name)
    for kind in kinds:
        fig = viz.embedding_figure(m["img"][keep], m["txt"][caps], remap[ds.caption_image[caps]], method=kind, dim=2,
                                   title=f"{name}: image and caption embeddings ({kind.upper()}, {len(keep)} {ds.name} images)")
        wb.show(fig, run, f"03_embeddings_{name}_{kind}")
m = wb.load_method(run, "pretrained")
fig3 = viz.embedding_figure(m["img"][keep], m["txt"][caps], remap[ds.caption_image[caps]], method="pca", dim=3,
                            title=f"pretrained: embeddings in 3-D (PCA, {ds.name})")
wb.show(fig3, run, "03_embeddings_pretrained_pca3d")

# %% [markdown]
# ## Embedding shift along the gap direction

# %%
shift_rows = []
taus = {name: wb.method_temperature(methods, name, temperature) for name in methods}
for name in methods:
    m = wb.load_method(run, name)
    t = analysis.embedding_shift(m["img"], m["txt"], ds.caption_image, shifts, taus[name])
    t.insert(0, "method", name)
    t.insert(1, "tau", taus[name])
    shift_rows.append(t)
shift = pd.concat(shift_rows)
wb.write_table(run, "gap_shift", shift, protocol=f"embedding shift; R@1 on one-to-one labels (full {ds.num_images}x{ds.num_captions}); "
                                                  "loss on first caption per image at the method's τ (column tau)")
tau0 = taus.get("pretrained", temperature or 0.01)
wb.show(viz.gap_shift_figure(shift[shift.method == "pretrained"], title=f"pretrained: shifting the clouds along Δ ({ds.name}, τ={tau0:.3g})"),
        run, "03_gap_shift")
print(shift.to_string())

# %% [markdown]
# ## What the points are
# A few images of the map with their nearest images and nearest captions (cosine, all test
# items; captions framed green when true of the image). Nearest neighbours of the same modality
# sit closer than the true pairs across the gap. In JupyterLab: hover or click a point of the
# map below to see its image or caption and its neighbours.

# %%
rng = np.random.default_rng(seed)
ex_images = rng.choice(keep, size=min(n_examples, len(keep)), replace=False)
ex_captions = rng.choice(caps, size=1, replace=False) if len(caps) else []
em = wb.load_method(run, explore_method)
viz.show_html(viz.embedding_examples_html(ds, em["img"], em["txt"], ex_images, ex_captions,
                                          title=f"{explore_method}: points of the map and their nearest neighbours ({ds.name})"),
              run, "03_neighbours")
if not HEADLESS:
    import ipywidgets as W
    W.interact(lambda method: display(viz.embedding_explorer(ds, wb.load_method(run, method)["img"], wb.load_method(run, method)["txt"], keep, caps,
                                                             title=f"{method}: hover or click a point (PCA)").widget),
               method=W.Dropdown(options=list(methods), value=explore_method))
else:
    print("headless: a few points and their neighbours are above (hover and click need JupyterLab)")
