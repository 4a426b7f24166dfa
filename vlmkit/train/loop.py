"""The fine-tuning loop: :func:`finetune` (see :class:`~vlmkit.train.config.TrainConfig`).

The loop is the same for every method: what differs (loss, own parameters, optimiser groups,
schedule, validation scorer, best-checkpoint files) is asked of the run's
:class:`~vlmkit.train.methods.Method` (:func:`~vlmkit.train.methods.get_method`).

Reproducibility: the caption order of epoch ``e`` is ``default_rng([seed, e]).permutation``
of the training captions (all, or the first ``captions_per_image`` of each image), and the
mixup λs / VACSR samples of global step ``s`` come from a generator seeded with ``(seed, s)``;
the learning rate follows :func:`vlmkit.schedule.warmup_cosine`, rebuilt at the
checkpoint's step on resume; so a run resumed from ``checkpoint.pt`` (model, optimiser,
scaler, step, RNG states, history, best RSUM) replays exactly what an uninterrupted run does
(on CPU). Batches are ``batch_size`` captions with the image each was written for (the last
partial batch of an epoch is dropped); under DDP each of R ranks takes ``batch_size / R`` of them and
the contrastive / mixup / sigmoid losses see the global batch through
:func:`vlmkit.losses.gather_features` in local-loss mode.

Validation each epoch: R@1/5/10 both directions and RSUM (percent) on the validation split,
under the COCO 1K protocol when it has a multiple of 1,000 images (the default 1,000: one
fold), else the full N×M gallery; the protocol's name is stored in the history. The epoch
with the best RSUM is saved to ``best/``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..data.loading import CaptionPairs, ImageTensors, tokenize_all
from ..features import encode_dataset
from ..losses import gather_features
from ..metrics import coco_recall, protocol_name, rsum
from ..models.factory import LoadedModel, load_model, save_model
from ..schedule import decays
from ..utils import (VlmkitError, atomic_dir, atomic_torch_save, atomic_write_json, atomic_write_text, first_captions,
                     progress, seed_everything)
from . import distributed as D
from .amp import autocast_setup
from .config import TrainConfig
from .methods import Batch, Method, get_method

CHECKPOINT = "checkpoint.pt"
TIME_KEYS = ("seconds", "step_ms")  # history fields that differ between identical runs


@dataclass
class FinetuneResult:
    out_dir: Path
    best_dir: Path
    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_rsum: float = float("-inf")
    seconds: float = 0.0


class _Trainable(nn.Module):
    """The CLIP model plus the method's own module (SigLIP scale/bias, VACSR adapter), held under
    the method's :attr:`~vlmkit.train.methods.Method.attribute` (so checkpoint keys are
    ``clip.*`` and e.g. ``head.*`` / ``vacsr.*``); :attr:`extra` is that module or None."""

    def __init__(self, clip: nn.Module, attribute: str | None = None, extra: nn.Module | None = None):
        super().__init__()
        self.clip = clip
        self._extra_name = attribute if extra is not None else None
        if self._extra_name is not None:
            self.add_module(self._extra_name, extra)

    @property
    def extra(self) -> nn.Module | None:
        return None if self._extra_name is None else getattr(self, self._extra_name)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor):
        out = self.clip(x, tokens)
        return out[0], out[1], out[2]  # unit-norm image / text features, exp(logit_scale)


# --------------------------------------------------------------------------- data


def load_splits(cfg: TrainConfig):
    """(train, val) :class:`PairDataset` s as described in :class:`TrainConfig`."""
    from ..data.formats import load_dataset
    from ..data.noise import inject_noise
    from ..data.shapes import make_shapes
    from ..data.spec import parse_spec

    spec = parse_spec(cfg.dataset)
    if spec.embedded:
        preset = spec.embedded_preset("TrainConfig.dataset")
        train = make_shapes("train", n_images=cfg.train_images, seed=cfg.data_seed, preset=preset)
        val = make_shapes("val", n_images=cfg.val_images, seed=cfg.data_seed, preset=preset)
    else:
        full = load_dataset(cfg.dataset, pairs=True)
        if cfg.val_dataset is not None:
            train, val = full, load_dataset(cfg.val_dataset, pairs=True)
        else:
            n = full.num_images
            if n <= cfg.val_images:
                raise VlmkitError(f"TrainConfig.dataset={cfg.dataset!r} has {n} images, "
                                  f"not more than val_images={cfg.val_images}; pass val_dataset")
            train = full.subset(np.arange(n - cfg.val_images), name=f"{full.name}-train")
            val = full.subset(np.arange(n - cfg.val_images, n), name=f"{full.name}-val")
    for name, ds in (("train", train), ("val", val)):
        if ds.num_images == 0 or ds.num_captions == 0:
            raise VlmkitError(f"TrainConfig.dataset: the {name} split {ds.name!r} is empty")
    if cfg.noise_ratio > 0:
        train = inject_noise(train, cfg.noise_ratio, seed=cfg.data_seed)
    return train, val


def training_captions(cfg: TrainConfig, train) -> np.ndarray:
    """Caption indices (ascending) the epochs draw from: every caption of ``train``
    (``captions_per_image=None``), or the first ``captions_per_image`` of each image (1 = the
    m²-Mix authors' epoch of one caption per image)."""
    return first_captions(train.caption_image, train.num_images, cfg.captions_per_image)


def epoch_batches(cfg: TrainConfig, captions: np.ndarray, epoch: int) -> list[np.ndarray]:
    """The global batches of ``epoch``: ``captions`` shuffled by ``default_rng([seed, epoch])``,
    cut into ``batch_size`` captions (each with the image it was written for); the last
    partial batch is dropped."""
    order = np.asarray(captions)[np.random.default_rng([cfg.seed, epoch]).permutation(len(captions))]
    b = cfg.batch_size
    return [order[s * b : (s + 1) * b] for s in range(len(order) // b)]


# --------------------------------------------------------------------------- model / optimiser


def _tower(name: str) -> str:
    if name in ("logit_scale", "logit_bias"):
        return "logit"
    return "image" if name.startswith("visual.") else "text"


def build_optimizer(cfg: TrainConfig, trainable: _Trainable, method: Method | None = None) -> torch.optim.Optimizer:
    """AdamW groups: (image, text) × (decay, no decay) at the method's tower lr times the tower
    multipliers, the logit scale (no decay; trained when the method learns it), then the
    method's own groups (SigLIP head, VACSR adapter: :meth:`Method.param_groups`)."""
    method = method or get_method(cfg.method)
    learn_scale = method.learns_scale(cfg)
    mult = {"image": 0.0 if cfg.freeze == "image" else cfg.lr_mult_image,
            "text": 0.0 if cfg.freeze == "text" else cfg.lr_mult_text}
    groups: dict[tuple, list] = {}
    for name, p in trainable.clip.named_parameters():
        tower = _tower(name)
        frozen = ((tower == "logit" and not learn_scale) or (tower != "logit" and mult[tower] == 0)
                  or name.startswith(cfg.freeze_prefixes or ("\0",)))
        p.requires_grad_(not frozen)
        if frozen:
            continue
        decay = tower != "logit" and decays(name, p)
        lr = method.tower_lr(cfg, tower) * (mult.get(tower, 1.0))
        groups.setdefault((tower, decay, lr), []).append(p)
    param_groups = [{"params": ps, "weight_decay": cfg.weight_decay if decay else 0.0, "lr": lr,
                     "name": f"{tower}{'' if decay else '-nodecay'}"}
                    for (tower, decay, lr), ps in groups.items()]
    if trainable.extra is not None:
        param_groups += method.param_groups(cfg, trainable.extra)
    if not any(g["params"] for g in param_groups):
        raise VlmkitError("TrainConfig: every parameter is frozen; nothing to train")
    return torch.optim.AdamW(param_groups, lr=cfg.lr)


def _schedule(cfg: TrainConfig, opt: torch.optim.Optimizer, total: int, steps_per_epoch: int, last_step: int = -1):
    """The method's lr schedule (:meth:`Method.schedule`)."""
    return get_method(cfg.method).schedule(cfg, opt, total, steps_per_epoch, last_step)


# --------------------------------------------------------------------------- evaluation


@torch.no_grad()
def validate(loaded: LoadedModel, val, adapter: nn.Module | None = None, *, batch_size: int = 256,
             amp: bool | str = "auto") -> dict:
    """R@1/5/10 both directions (percent) and RSUM on ``val`` (protocol in the module docstring);
    with a VACSR adapter the pairs are ranked by its scores (:func:`vlmkit.vacsr.score_all`)."""
    feats = encode_dataset(loaded, val, batch_size=batch_size, amp=amp)
    if adapter is not None:
        from ..vacsr import score_all

        was = adapter.training
        adapter.eval()
        sims, _ = score_all(adapter, feats.images, feats.texts, device=loaded.device, show_progress=False)
        adapter.train(was)
    else:
        sims = feats.images @ feats.texts.T
    n, m = sims.shape
    protocol = "coco1k" if n % 1000 == 0 else "full"
    rec = coco_recall(sims, np.asarray(val.caption_image), protocol=protocol)
    out = {f"{d}_r{k}": 100.0 * v for (d, k), v in sorted(rec.items())}
    out["rsum"] = rsum(rec)
    out["val_protocol"] = protocol_name(protocol, n, m)
    return out


# --------------------------------------------------------------------------- checkpoints


def _rng_state() -> dict:
    st = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    np.random.set_state(st["numpy"])
    random.setstate(st["python"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def _write_history(out_dir: Path, history: list[dict]) -> None:
    atomic_write_json(out_dir / "history.json", history)
    keys: list[str] = []
    for row in history:
        keys += [k for k in row if k not in keys]
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(history)
    atomic_write_text(out_dir / "history.csv", buf.getvalue())


def _comparable(d: dict) -> dict:
    return {k: v for k, v in d.items() if k not in ("epochs", "device")}


def _read_checkpoint(cfg: TrainConfig, ckpt_path: Path) -> dict | None:
    """The checkpoint to resume from (None when there is none); one written for another
    configuration raises (only ``epochs`` and ``device`` may differ)."""
    if not ckpt_path.is_file():
        return None
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    ckpt["config"] = {**TrainConfig().to_dict(), **ckpt["config"]}  # fields added since take their defaults
    if _comparable(ckpt["config"]) != _comparable(cfg.to_dict()):
        diff = sorted(k for k in _comparable(cfg.to_dict()) if ckpt["config"].get(k) != cfg.to_dict()[k])
        raise VlmkitError(f"{ckpt_path}: written for a different configuration (fields {diff}); "
                          "use another out_dir or resume=False")
    if ckpt["config"]["epochs"] != cfg.epochs:
        warnings.warn(f"resuming with epochs={cfg.epochs} (checkpoint planned {ckpt['config']['epochs']}): "
                      "the cosine schedule is re-planned")
    return ckpt


# --------------------------------------------------------------------------- the loop


def finetune(cfg: TrainConfig, out_dir: str | os.PathLike, resume: bool = True, *,
             stop_after_epochs: int | None = None) -> FinetuneResult:
    """Fine-tune ``cfg.model`` as configured; write ``out_dir`` (checkpoint.pt, best/,
    history.json/.csv, config.json) and return a :class:`FinetuneResult`.

    ``resume=True`` continues from ``out_dir/checkpoint.pt`` when it exists (a checkpoint of a
    different configuration raises; only ``epochs`` may change, which re-plans the cosine
    schedule). ``stop_after_epochs=k`` returns after the k-th epoch of the run as if killed
    there (for time-boxed jobs and the resume test). Under torchrun every rank calls this.
    """
    if not isinstance(cfg, TrainConfig):
        raise VlmkitError(f"finetune: expected a TrainConfig, got {type(cfg).__name__}")
    cfg.validate()
    start_time = time.time()
    out_dir = Path(out_dir)
    info = D.setup(cfg.device)
    try:
        return _run(cfg, out_dir, resume, stop_after_epochs, info, start_time)
    finally:
        D.cleanup(info)


def _run(cfg: TrainConfig, out_dir: Path, resume: bool, stop_after: int | None, info: D.DistInfo,
         t0: float) -> FinetuneResult:
    dev = info.device
    if cfg.batch_size % info.world_size:
        raise VlmkitError(f"TrainConfig.batch_size={cfg.batch_size} "
                          f"must be divisible by the {info.world_size} processes")
    if cfg.batch_size // info.world_size < 1:
        raise VlmkitError("TrainConfig.batch_size: fewer captions than processes")
    train, val = load_splits(cfg)
    n_local = cfg.batch_size // info.world_size
    captions = training_captions(cfg, train)
    steps_per_epoch = len(captions) // cfg.batch_size
    if steps_per_epoch < 1:
        per = "" if cfg.captions_per_image is None else f" (captions_per_image={cfg.captions_per_image})"
        raise VlmkitError(f"TrainConfig.batch_size={cfg.batch_size} exceeds the {len(captions)} "
                          f"training captions{per} of {train.name}")
    ckpt = _read_checkpoint(cfg, out_dir / CHECKPOINT) if resume else None

    seed_everything(cfg.seed)
    loaded = load_model(cfg.model, cfg.pretrained, device=dev)
    loaded.pretrained = cfg.pretrained
    if cfg.grad_checkpointing:
        loaded.model.set_grad_checkpointing(True)
    method = get_method(cfg.method)
    extra = method.build(cfg, loaded, train, n_local, dev, fresh=ckpt is None)
    trainable = _Trainable(loaded.model, method.attribute, extra)
    opt = build_optimizer(cfg, trainable, method)
    total = cfg.epochs * steps_per_epoch
    sched = method.schedule(cfg, opt, total, steps_per_epoch)
    autocast, scaler, enc_amp = autocast_setup(cfg, dev)
    criterion = method.criterion(cfg, loaded, extra)

    history: list[dict] = []
    step, start_epoch, best_rsum, best_epoch = 0, 0, float("-inf"), -1
    if ckpt is not None:
        trainable.load_state_dict(ckpt["trainable"])
        opt.load_state_dict(ckpt["optimizer"])
        for g in opt.param_groups:  # checkpoints from before the scheduler kept the peak lr as base_lr
            g.setdefault("initial_lr", g.get("base_lr", g["lr"]))
        # the schedule rebuilt at the checkpoint's step (re-planned when epochs changed)
        sched = method.schedule(cfg, opt, total, steps_per_epoch, last_step=ckpt["step"] - 1)
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        step, start_epoch = ckpt["step"], ckpt["epoch"]
        history, best_rsum, best_epoch = ckpt["history"], ckpt["best_rsum"], ckpt["best_epoch"]
        _set_rng_state(ckpt["rng"])
    model = trainable
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = DDP(trainable, device_ids=[dev.index] if dev.type == "cuda" else None)
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out_dir / "config.json", cfg.to_dict())

    tensors = ImageTensors(train, loaded.preprocess, loaded.preprocess_cfg)
    pairs = CaptionPairs(train, tensors, tokenize_all(loaded.tokenizer, train.captions))
    params = [p for g in opt.param_groups for p in g["params"]]
    learn_scale = method.learns_scale(cfg)
    epochs_run = 0

    for epoch in range(start_epoch, cfg.epochs):
        if stop_after is not None and epochs_run >= stop_after:
            break
        trainable.train(not cfg.eval_mode)
        batches = epoch_batches(cfg, captions, epoch)
        sums: dict[str, float] = {}
        t_epoch = time.time()
        steps = range(steps_per_epoch)
        bar = progress(steps, desc=f"epoch {epoch + 1}/{cfg.epochs} ({cfg.method})") if info.is_main else steps
        for s in bar:
            js = batches[s][info.rank * n_local : (info.rank + 1) * n_local]
            x, tokens, _, img_idx = pairs.collate_fast(js)
            x, tokens = x.to(dev, non_blocking=True), tokens.to(dev, non_blocking=True)
            gen = torch.Generator().manual_seed(int(cfg.seed) * 1_000_003 + step)
            with autocast():
                img, txt, scale = model(x, tokens)
                img, txt = img.float(), txt.float()
                all_img, all_txt, off, size = gather_features(img, txt)
                loss, logs = criterion(Batch(img, txt, all_img, all_txt, off, size, scale, img_idx, gen, cfg.seed,
                                             step, epoch))
            opt.zero_grad(set_to_none=True)
            if not torch.isfinite(loss):
                raise VlmkitError(f"non-finite loss at epoch {epoch + 1}, step {step} ({cfg.method}); "
                                  "lower lr or use amp='off'/'bf16'")
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
            else:
                loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            if scaler is not None:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            lr_used = opt.param_groups[0]["lr"]
            sched.step()
            if learn_scale:
                with torch.no_grad():
                    loaded.model.logit_scale.clamp_(0, math.log(100))
            step += 1
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach() if isinstance(v, torch.Tensor) else v)
            if info.is_main:
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}", refresh=False)
        train_seconds = time.time() - t_epoch
        sums = D.mean_over_ranks(sums, info, dev)  # each rank logged its local-loss share
        row = {"epoch": epoch + 1, "step": step, "lr": lr_used}  # the lr of the epoch's last step
        row.update(criterion.epoch_fields())
        row.update({("train_" + k if k != "loss" else "train_loss"): v / steps_per_epoch for k, v in sums.items()})
        row.update(validate(loaded, val, method.val_adapter(extra), batch_size=cfg.eval_batch_size, amp=enc_amp))
        row["seconds"] = round(time.time() - t_epoch, 2)
        row["step_ms"] = round(1000 * train_seconds / steps_per_epoch, 2)
        history.append(row)
        improved = row["rsum"] > best_rsum
        if improved:
            best_rsum, best_epoch = row["rsum"], epoch + 1
        if info.is_main:
            if improved:
                _save_best(out_dir / "best", loaded, trainable, cfg, row, method)
            state = {"trainable": trainable.state_dict(), "optimizer": opt.state_dict(),
                     "scaler": scaler.state_dict() if scaler else None,
                     "step": step, "epoch": epoch + 1, "history": history, "best_rsum": best_rsum,
                     "best_epoch": best_epoch,
                     "rng": _rng_state(), "config": cfg.to_dict(), "world_size": info.world_size}
            atomic_torch_save(state, out_dir / CHECKPOINT)
            _write_history(out_dir, history)
        D.barrier(info)
        epochs_run += 1
    trainable.eval()
    return FinetuneResult(out_dir, out_dir / "best", history, best_epoch, best_rsum, round(time.time() - t0, 2))


def _save_best(path: Path, loaded: LoadedModel, trainable: _Trainable, cfg: TrainConfig, row: dict,
               method: Method) -> None:
    extra = {"finetune": {"config": cfg.to_dict(), "epoch": row["epoch"], "rsum": row["rsum"],
                          "val_protocol": row["val_protocol"]}}
    if trainable.extra is not None:
        extra.update(method.best_metadata(trainable.extra))
    with atomic_dir(path) as tmp:
        save_model(loaded, tmp, extra)
        if trainable.extra is not None:
            method.save_best(trainable.extra, tmp, row)


def load_history(out_dir: str | os.PathLike) -> list[dict]:
    """The metric history of a run directory."""
    path = Path(out_dir) / "history.json"
    if not path.is_file():
        raise VlmkitError(f"{path}: no history (not a finetune output directory?)")
    return json.loads(path.read_text())
