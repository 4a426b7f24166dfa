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
strip_rows: int = 6  # λ rows in the static strip of retrieved images and captions
mix_lambda: float = 0.5  # λ of the mixed negatives in the hardness comparison
max_pairs: int = 400  # pairs in the hardness comparison
seed: int = 0  # subsampling seed

# %%
import numpy as np
from IPython.display import display

from vlmkit import analysis, viz
from vlmkit import workbook as wb
from vlmkit.utils import first_captions

run = wb.prepare_run_dir(run_dir)
HEADLESS = wb.headless()  # papermill / vlmkit run: no widgets (figures are embedded either way)
ds = wb.run_dataset(run)
m = wb.load_method(run, method)
first = first_captions(ds.caption_image, ds.num_images, by_image=True)  # row i: image i's first caption
lambdas = np.linspace(0, 1, n_lambdas)

# %%
path = viz.slerp_path_table(ds, m["img"], m["txt"], query, lambdas, k)
truth = wb.truth_protocol(ds)
wb.write_table(run, "slerp_path", path, protocol=f"{method}: top-{k} of slerp(v, t; λ) among {ds.num_images} images + {ds.num_captions} captions; relevant = {truth}")
title = f"{method}: nearest items along slerp(image {query}, “{ds.captions[first[query]][:50]}”; λ); relevant = {truth}"
wb.show(viz.slerp_path_figure(path, title=title), run, "04_slerp_path")
print(path[path["rank"] == 1][["lam", "modality", "label", "similarity", "relevant"]].to_string())

# %% [markdown]
# ## The retrieved images and captions along the path
# One row per λ: the nearest images (thumbnails) and captions (text), framed green when true for
# the query pair. In JupyterLab the λ slider and the query box below re-render the row.

# %%
viz.show_html(viz.slerp_path_html(ds, path, max_rows=strip_rows, title=f"{method}: along slerp(image {query}, its caption; λ), relevant = {truth}"),
              run, "04_slerp_strip")
if not HEADLESS:
    display(viz.slerp_explorer(ds, m["img"], m["txt"], lambdas, query=query, k=k).widget)
else:
    print(f"headless: the strip of query {query} is above (the λ slider and query picker need JupyterLab)")

# %% [markdown]
# ## Mixed vs original negatives

# %%
hard = analysis.mixed_negative_hardness(m["img"], m["txt"][first], lam=mix_lambda, max_pairs=max_pairs, seed=seed)
summary = analysis.hardness_summary(hard)
wb.write_table(run, "hardness", summary, protocol=f"{method}: cosine(anchor image, negative), {min(max_pairs, ds.num_images)} pairs, first caption per image")
wb.show(viz.hardness_figure(hard, title=f"{method}: original vs m²-Mix negatives (λ={mix_lambda}, {ds.name})"), run, "04_hardness")
print(summary.to_string())
