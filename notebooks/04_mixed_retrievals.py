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
# # 04 · Mixed retrievals along the geodesic
#
# m²-Mix builds hard negatives m = slerp(v, t; λ) between an image v and its caption t.
# What lies near such a mix? For λ from 0 (the caption) to 1 (the image), the nearest gallery
# items (images ■ and captions ●, green when true for the query pair). Then: are mixed
# negatives harder than the original ones?

# %% tags=["parameters"]
run_dir: str = "runs/interactive"  # the run directory every notebook reads and writes
method: str = "pretrained"  # the registered method whose embeddings are used
query: int = 0  # index of the query image (its first caption is t)
k: int = 5  # gallery items shown per λ
n_lambdas: int = 11  # λ grid size over [0, 1]
mix_lambda: float = 0.5  # λ of the mixed negatives in the hardness comparison
max_pairs: int = 400  # pairs in the hardness comparison
seed: int = 0  # subsampling seed

# %%
import numpy as np

from vlmkit import analysis, viz
from vlmkit import workbook as wb

run = wb.prepare_run_dir(run_dir)
HEADLESS = wb.headless()  # papermill / vlmkit run: no widgets (figures are embedded either way)
ds = wb.run_dataset(run)
m = wb.load_method(run, method)
first = wb.one_caption_per_image(ds.caption_image, ds.num_images)
lambdas = np.linspace(0, 1, n_lambdas)


# %%
def path_table(q):
    t = analysis.slerp_neighbours(m["img"][q], m["txt"][first[q]], m["img"], m["txt"], lambdas, k)
    cap = first[q]
    t["relevant"] = [bool(ds.positives([r.index], [cap])[0, 0]) if r.modality == "image" else bool(ds.positives([q], [r.index])[0, 0])
                     for r in t.itertuples()]
    t["label"] = [f"image {r.index}" if r.modality == "image" else ds.captions[r.index] for r in t.itertuples()]
    return t

path = path_table(query)
truth = wb.truth_protocol(ds)
wb.write_table(run, "slerp_path", path, protocol=f"{method}: top-{k} of slerp(v, t; λ) among {ds.num_images} images + {ds.num_captions} captions; relevant = {truth}")
title = f"{method}: nearest items along slerp(image {query}, “{ds.captions[first[query]][:50]}”; λ); relevant = {truth}"
wb.show(viz.slerp_path_figure(path, title=title), run, "04_slerp_path")
print(path[path["rank"] == 1][["lam", "modality", "label", "similarity", "relevant"]].to_string())

# %%
if not HEADLESS:
    import ipywidgets as W
    def _view(q, lam):
        t = path_table(q)
        print(t[np.isclose(t.lam, lambdas[np.abs(lambdas - lam).argmin()])][["rank", "modality", "label", "similarity", "relevant"]])
        viz.slerp_path_figure(t, title=f"query image {q}").show()
    W.interact(_view, q=W.IntSlider(0, 0, ds.num_images - 1), lam=W.FloatSlider(value=0.5, min=0, max=1, step=0.1, description="λ"))
else:
    print(f"headless: the view of query {query} is above (the λ slider and query picker need JupyterLab)")

# %% [markdown]
# ## Mixed vs original negatives

# %%
hard = analysis.mixed_negative_hardness(m["img"], m["txt"][first], lam=mix_lambda, max_pairs=max_pairs, seed=seed)
summary = analysis.hardness_summary(hard)
wb.write_table(run, "hardness", summary, protocol=f"{method}: cosine(anchor image, negative), {min(max_pairs, ds.num_images)} pairs, first caption per image")
wb.show(viz.hardness_figure(hard, title=f"{method}: original vs m²-Mix negatives (λ={mix_lambda}, {ds.name})"), run, "04_hardness")
print(summary.to_string())
