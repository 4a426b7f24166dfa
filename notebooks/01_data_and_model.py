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
# image–caption pair) and the model (the **stand-in tiny CLIP** pretrained here by `pretrain_tiny`,
# cached across runs, or any open_clip model/checkpoint), encodes the test set, and counts the
# **false negatives** that one-to-one labels create.

# %% tags=["parameters"]
run_dir: str = "runs/interactive"  # the run directory every notebook reads and writes
dataset: str = "shapes"  # shapes (the embedded data) or a vlmkit.data.load_dataset spec of real test data
test_images: int = 1000  # test images of the embedded data (5 captions each)
seed: int = 0  # data and training seed
model: str = "vlmkit-tiny"  # open_clip architecture name
pretrained: str = ""  # empty: the embedded stand-in (pretrain_tiny); else an open_clip tag or a checkpoint file/dir
pretrain_steps: int = 170  # pretraining steps of the stand-in checkpoint
pretrain_images: int = 10000  # images of the web-like pretraining split
pretrain_batch: int = 256  # pretraining batch size
cache_dir: str = ""  # checkpoint and feature cache; empty: $VLMKIT_CACHE or ~/.cache/vlmkit
device: str = "auto"  # auto (GPU when present), cpu or cuda

# %%
from pathlib import Path

import pandas as pd
from IPython.display import display

from vlmkit import viz
from vlmkit import workbook as wb
from vlmkit.features import encode_dataset
from vlmkit.kernel import record_skipped
from vlmkit.metrics import false_negative_census
from vlmkit.models.factory import load_model
from vlmkit.pretrain import PretrainConfig, pretrain_tiny

run = wb.prepare_run_dir(run_dir)
HEADLESS = wb.headless()  # papermill / vlmkit run: no widgets (figures are embedded either way)
cache = Path(cache_dir) if cache_dir else wb.default_cache_dir()

# %%
if pretrained:
    loaded = load_model(model, pretrained=pretrained, device=device)
    pretrained_dir = pretrained
else:
    cfg = PretrainConfig(model=model, n_images=pretrain_images, steps=pretrain_steps, batch_size=pretrain_batch, seed=seed)
    pretrained_dir = str(cache / "pretrained" / cfg.key())
    loaded = pretrain_tiny(pretrained_dir, cfg, device=device)
ds = wb.load_test_dataset(dataset, test_images, seed)
record_skipped(ds, "test")  # what the loader left out goes into run.json under vlmkit run
wb.save_data_spec(run, dataset, test_images, seed, model=model, pretrained_dir=pretrained_dir, name=ds.name)
print(ds, "| model:", model, "from", pretrained_dir)

# %%
feats = encode_dataset(loaded, ds, cache_dir=cache / "features")
wb.register_method(run, "pretrained", img=feats.images, txt=feats.texts,
                   info={"score_kind": "cosine", "description": "zero-shot: the pretrained checkpoint"})
print("test features:", tuple(feats.images.shape), tuple(feats.texts.shape))

# %% [markdown]
# ## False-negative census
# For every caption: the images it is *true of* other than its own. By caption specificity (0 = count only … 4 = full scene).

# %%
if ds.has_extended_positives:
    census = false_negative_census(ds)
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
