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
# # 01 · Data and model
#
# Loads the evaluation data (the **embedded shapes** test split by default: exact truth for every
# image–caption pair; `shapes_preset` picks the COCO-like `coco` regime or the false-negative-heavy
# `stress` one) and the model (the **stand-in CLIP** shipped with vlmkit, or any open_clip
# model/checkpoint), encodes the test set, and counts the **false negatives** that one-to-one
# labels create.

# %% tags=["parameters"]
run_dir: str = "runs/interactive"  # the run directory every notebook reads and writes
dataset: str = "shapes"  # shapes (the embedded data) or a vlmkit.data.load_dataset spec of real test data
shapes_preset: str = "coco"  # embedded data regime: coco (near-unique captions, the papers' regime) or stress (generic captions)
test_images: int = 1000  # test images of the embedded data (5 captions each)
seed: int = 0  # data and training seed
model: str = ""  # open_clip architecture of `pretrained` (empty: the stand-in's or a save_model directory's own config)
pretrained: str = "stand-in"  # stand-in (shipped), an open_clip tag in the local cache, a .pt/.safetensors file or a save_model dir
cache_dir: str = ""  # checkpoint and feature cache; empty: $VLMKIT_CACHE or ~/.cache/vlmkit
device: str = "auto"  # auto (GPU when present), cpu or cuda
n_show: int = 8  # test images shown with their captions

# %%
from pathlib import Path

import pandas as pd
from IPython.display import display

from vlmkit import viz
from vlmkit import workbook as wb
from vlmkit.features import encode_dataset
from vlmkit.kernel import record_skipped
from vlmkit.metrics import false_negative_census
from vlmkit.models import learned_temperature
from vlmkit.models.factory import load_model

run = wb.prepare_run_dir(run_dir)
HEADLESS = wb.headless()  # papermill / vlmkit run: no widgets (figures are embedded either way)
cache = Path(cache_dir) if cache_dir else wb.default_cache_dir()

# %%
loaded = load_model(model, pretrained=pretrained, device=device)
data_spec = wb.embedded_spec(dataset, shapes_preset)
ds = wb.load_test_dataset(data_spec, test_images, seed, image_cache=run / "cache")  # rendered once per run: the next notebooks read it
record_skipped(ds, "test")  # what the loader left out goes into run.json under vlmkit run
wb.save_data_spec(run, data_spec, test_images, seed, model=loaded.name, pretrained_dir=pretrained, name=ds.name)
print(ds, "| model:", loaded.name, "from", pretrained or "random weights")

# %%
feats = encode_dataset(loaded, ds, cache_dir=cache / "features")
wb.register_method(run, "pretrained", img=feats.images, txt=feats.texts,
                   info={"score_kind": "cosine", "description": "zero-shot: the pretrained checkpoint", "tau": learned_temperature(loaded)})
print("test features:", tuple(feats.images.shape), tuple(feats.texts.shape))

# %% [markdown]
# ## The data, seen
# Test images with the captions written for them (coloured by specificity: green = detailed,
# red = gist), and the image with the most **false negatives**: captions written for other
# images that are true of it, yet labelled negative. Also saved as `figures/01_test_images.html`.

# %%
from IPython.display import HTML

from vlmkit.utils import atomic_write_text

# every test pair's type (labelled / false negative / true negative) by the data's truth, computed once
# per run in row blocks (int8, cache/pair_codes-*.npy): the census below and notebooks 05–08 and 10 read it
codes = wb.pair_codes(run, ds) if ds.has_extended_positives else None
seen = viz.image_grid_html(ds, range(min(n_show, ds.num_images)), title=f"{ds.name}: test images and their captions")
if ds.has_extended_positives:
    seen += viz.false_negative_captions_html(ds, None, codes=codes)
display(HTML(seen))
atomic_write_text(run / "figures" / "01_test_images.html", f"<html><head><meta charset='utf-8'></head><body>{seen}</body></html>")

# %% [markdown]
# ## False-negative census
# For every caption: the images it is *true of* other than its own. By caption specificity (0 = count only … 4 = full scene).

# %%
if ds.has_extended_positives:
    census = false_negative_census(ds, codes=codes)
    truth = wb.truth_protocol(ds)
    wb.write_table(run, "census", census, protocol=f"false-negative census, one-to-one labels vs {truth}, {ds.name}")
    wb.show(viz.table_figure(census.drop(columns=["split"]), title=f"False-negative census ({ds.name}; one-to-one labels vs {truth})"),
            run, "01_census")
    display(census) if not HEADLESS else print(census.to_string())
else:
    print(f"note: {ds.name} has no extended truth; the census is skipped")

# %%
rows = [{"caption": ds.captions[j], "specificity": int(ds.caption_meta["specificity"][j]) if "specificity" in ds.caption_meta else -1,
         "images it is true of": int(ds.positives(None, [j]).sum())} for j in ds.captions_of(0)]
examples = pd.DataFrame(rows)
wb.show(viz.table_figure(examples, title=f"Captions written for image 0 of {ds.name} and how many test images each is true of ({wb.truth_protocol(ds)})"),
        run, "01_example_captions")
print(examples.to_string())
