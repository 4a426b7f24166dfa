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
# # 02 · Fine-tuning methods and VACSR
#
# Fine-tunes the pretrained checkpoint with each method in `methods` — `contrastive`, `sigmoid`,
# the m²-Mix family (`m2mix`, `vmix`, `lmix`, `vlmix`, `all`) and `vacsr-joint` (encoders and the
# VACSR adapter trained together) — keeps the epoch with the best validation RSUM, encodes the test
# set with it, and trains the **VACSR** adapter on frozen pretrained features (the cheap path).
# The defaults are the `workbook` recipe (`vlmkit.train.RECIPES`; bench/README.md, "The premise"):
# the authors' eval mode, τ = the model's own learned τ, warm-up + cosine, at a learning rate and
# epoch count sized for the stand-in. As in the papers, the fine-tuning methods train on the
# **clean** split (`noise_ratio`, 0) and VACSR — on frozen features and `vacsr-joint` — on the
# **noisy** one (`vacsr_noise_ratio` of captions permuted). Uses the GPU when present
# (`device="auto"`). Each method's run directory (`methods/<name>/`) holds its checkpoint, so an
# interrupted notebook resumes where it stopped.

# %% tags=["parameters"]
run_dir: str = "runs/interactive"  # the run directory every notebook reads and writes
methods: list = ["contrastive", "m2mix"]  # fine-tuning methods of vlmkit.train (empty list: none)
train_dataset: str = ""  # real data only: load_dataset spec of the training data (empty: no fine-tuning)
train_images: int = 2000  # training images (5 captions each) of the embedded data
val_images: int = 200  # validation images for checkpoint selection
noise_ratio: float = 0.0  # fraction of training captions permuted for the fine-tuning methods (clean, as the m²-Mix authors)
vacsr_noise_ratio: float = 0.2  # the same for VACSR (frozen features and vacsr-joint): its noisy-correspondence setting
epochs: int = 2  # fine-tuning epochs
batch_size: int = 128  # fine-tuning batch size
lr: float = 2e-4  # fine-tuning learning rate (suits the small stand-in; about 1e-5 for real CLIPs)
captions_per_image: int = 0  # training pairs per image: 0 every caption; 1 the first (the authors' epoch)
temperature: float = 0.0  # τ of the InfoNCE / m²-Mix base loss; 0: the model's own learned τ (the authors')
seed: int = 0  # training seed
vacsr: bool = True  # train the VACSR adapter on frozen pretrained features
vacsr_epochs: int = 3  # VACSR epochs on frozen features
vacsr_batch: int = 128  # captions per VACSR batch (each scored against every image in it)
vacsr_cosine_skip: float = 0.0  # above 0: the vacsr+skip variant with a skip path a(v.t), not the paper adapter; 0: the paper adapter
cache_dir: str = ""  # checkpoint and feature cache; empty: $VLMKIT_CACHE or ~/.cache/vlmkit
device: str = "auto"  # auto (GPU when present), cpu or cuda

# %%
from pathlib import Path

import pandas as pd
import torch

from vlmkit import viz
from vlmkit import workbook as wb
from vlmkit.features import encode_dataset
from vlmkit.kernel import record_skipped
from vlmkit.metrics import noise_census
from vlmkit.models import learned_temperature
from vlmkit.models.factory import load_model
from vlmkit.train import finetune, get_method
from vlmkit.utils import resolve_device
from vlmkit.vacsr import score_all

run = wb.prepare_run_dir(run_dir)
HEADLESS = wb.headless()  # papermill / vlmkit run: no widgets (figures are embedded either way)
spec = wb.run_data_spec(run)
cache = Path(cache_dir) if cache_dir else wb.default_cache_dir()
ds = wb.run_dataset(run)
method_list = wb.parse_methods(methods)
if not wb.is_embedded(spec["dataset"]) and not train_dataset and method_list:
    print(f"NOTE: real test data and no train_dataset: fine-tuning of {method_list} skipped (zero-shot only)")
    method_list = []
print("device:", resolve_device(device), "| methods:", method_list, "| noise ratio:", noise_ratio, "| VACSR noise ratio:", vacsr_noise_ratio)

# %% [markdown]
# ## The noisy training split
# `vacsr_noise_ratio` of the training captions are moved to another image (noisy correspondence),
# the split VACSR and `vacsr-joint` train on (the other methods train on the same images with
# `noise_ratio` of them moved: none by default). A moved caption can still be true of the image it now
# belongs to ("two shapes on a dark background" moved to another such image), so the census counts
# both: `moved` and `mismatched` (not true of its labelled image under the data's truth; on data
# without a truth every moved caption counts).

# %%
train = None
if wb.is_embedded(spec["dataset"]) or train_dataset:
    train = wb.training_data(spec, train_dataset, train_images, vacsr_noise_ratio, seed, val_images=val_images)
    record_skipped(train, "train")
    noise = noise_census(train)
    wb.write_table(run, "noise_census", noise, protocol=f"training split {train.name}, noise_ratio {vacsr_noise_ratio} (VACSR's): "
                                                        f"moved captions vs mismatched under {wb.truth_protocol(train)}")
    print(noise.to_string(index=False))

# %%
for name in method_list:
    method = get_method(name)  # its loss, noise setting and scorer (vlmkit.train.methods)
    noise_of = method.noise_ratio(noise_ratio, vacsr_noise_ratio)  # clean for the m²-Mix comparisons, noisy for VACSR
    result = finetune(wb.train_config(spec, name, train_dataset=train_dataset, train_images=train_images, val_images=val_images,
                                      noise_ratio=noise_of, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device,
                                      captions_per_image=captions_per_image or None, temperature=temperature or None),
                      out_dir=run / "methods" / name, resume=True)
    tuned = load_model(spec["model"], pretrained=result.best_dir, device=device)
    f = encode_dataset(tuned, ds, cache_dir=cache / "features")
    info = {"score_kind": method.score_kind, "description": f"fine-tuned: {name}", "best_dir": str(result.best_dir),
            "best_epoch": result.best_epoch, "tau": learned_temperature(tuned)}
    # the features, and the method's own scores when it has a scorer (vacsr-joint: its adapter's logit and σ²)
    wb.register_method(run, name, **method.test_outputs(result.best_dir, f.images, f.texts, device=device), info=info)
    h = pd.DataFrame(result.history)
    wb.write_table(run, f"history_{name}", h, protocol=f"validation R@K ({h.val_protocol.iloc[-1]}), train split with noise ratio {noise_of}")
    print(f"{name}: best epoch {result.best_epoch}, val RSUM {result.best_rsum:.1f} -> registered")

# %% [markdown]
# ## VACSR on frozen features
# The adapter scores every pair and gives it an uncertainty; trained on the noisy training split
# (`vacsr_noise_ratio`).

# %%
if vacsr and train is not None:
    from vlmkit.vacsr import VACSRConfig, train_on_features
    pre = load_model(spec["model"], pretrained=spec["pretrained_dir"], device=device)
    tf = encode_dataset(pre, train, cache_dir=cache / "features")
    vacsr_cfg = VACSRConfig(dim=int(tf.images.shape[1]), cosine_skip=vacsr_cosine_skip)  # the paper's adapter (mechanism="paper")
    adapter, hist = train_on_features(tf.images, tf.texts, torch.as_tensor(train.caption_image), vacsr_cfg, epochs=vacsr_epochs,
                                      batch_size=vacsr_batch, seed=seed, device=device,
                                      checkpoint_dir=run / "methods" / vacsr_cfg.label, resume=True,
                                      show_progress=True)
    test = wb.load_method(run, "pretrained", cosine=False)  # features only: no N × M cosine matrix
    vacsr_name = vacsr_cfg.label  # "vacsr" for the paper's adapter; the skip variant is never shown as plain VACSR
    # every test pair's score and σ², written to the run's .npy files block by block (no N × M matrix in memory)
    wb.register_scored_method(run, vacsr_name, lambda out: score_all(adapter, test["img"], test["txt"], device=device,
                                                                     show_progress=False, out=out),
                              (len(test["img"]), len(test["txt"])),
                              info={"score_kind": "logit", "description": f"{vacsr_name} adapter on frozen pretrained features"})
    h = pd.DataFrame(hist)
    wb.write_table(run, "vacsr_history", h, protocol=f"VACSR training history (train split, noise ratio {vacsr_noise_ratio})")
    print(h.tail(3).to_string())
else:
    print("VACSR on frozen features skipped (vacsr=False, or real test data without train_dataset)")

# %% [markdown]
# ## Training curves
# Training loss and validation RSUM after each epoch (the best epoch's checkpoint is the method's);
# VACSR's loss terms on frozen features beside them.

# %%
histories = {name: t for name in method_list if (t := wb.read_table(run, f"history_{name}")) is not None}
if histories:
    wb.show(viz.training_curves(histories, wb.read_table(run, "vacsr_history"),
                                title=f"Fine-tuning on {spec['dataset']} (noise {noise_ratio}; VACSR {vacsr_noise_ratio})"),
            run, "02_training_curves")

# %%
reg = pd.DataFrame([{"method": k, **{c: v[c] for c in ("description", "score_kind") if c in v}} for k, v in wb.list_methods(run).items()])
wb.write_table(run, "methods", reg, protocol=f"methods of this run (noise ratio {noise_ratio}; VACSR {vacsr_noise_ratio})")
print(reg.to_string())
