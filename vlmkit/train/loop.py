"""The fine-tuning loop: :func:`finetune` (see :class:`~vlmkit.train.config.TrainConfig`).

Reproducibility: the caption order of epoch ``e`` is ``default_rng([seed, e]).permutation``
of the training captions (all, or the first ``captions_per_image`` of each image), and the
mixup λs / VACSR samples of global step ``s`` come from a generator seeded with ``(seed, s)``;
the learning rate follows :func:`vlmkit.train.schedule.warmup_cosine`, rebuilt at the
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
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..data.loading import CaptionPairs, ImageTensors, tokenize_all
from ..features import encode_dataset
from ..losses import LOSS_PRESETS, contrastive_loss, gather_features, make_loss, sigmoid_loss
from ..metrics import coco_recall, protocol_name, rsum
from ..models.factory import LoadedModel, load_model, save_model
from ..utils import (VlmkitError, atomic_dir, atomic_torch_save, atomic_write_json, atomic_write_text, first_captions, progress,
                     seed_everything)
from . import distributed as D
from .config import TrainConfig
from .schedule import step_decay, warmup_cosine

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
    """The CLIP model plus the loss's own parameters (SigLIP scale/bias, VACSR adapter)."""

    def __init__(self, clip: nn.Module, head: nn.ParameterDict | None, vacsr: nn.Module | None):
        super().__init__()
        self.clip, self.head, self.vacsr = clip, head, vacsr

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
                raise VlmkitError(f"TrainConfig.dataset={cfg.dataset!r} has {n} images, not more than val_images={cfg.val_images}; pass val_dataset")
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


def base_temperature(cfg: TrainConfig, model: nn.Module) -> float:
    """τ of the base InfoNCE (and the V/L/VL mix terms): ``cfg.temperature``, or when that is
    ``None`` the model's own learned τ = 1 / exp(logit_scale) (the authors' 0.01 is CLIP's);
    ``loss_overrides["tau"]`` wins over both."""
    if "tau" in cfg.loss_overrides:
        return float(cfg.loss_overrides["tau"])
    if cfg.temperature is not None:
        return float(cfg.temperature)
    from ..models import learned_temperature

    return learned_temperature(model)


def _tower(name: str) -> str:
    if name in ("logit_scale", "logit_bias"):
        return "logit"
    return "image" if name.startswith("visual.") else "text"


def build_optimizer(cfg: TrainConfig, trainable: _Trainable) -> torch.optim.Optimizer:
    """AdamW groups: (image, text) × (decay, no decay) with the tower lr multipliers, the
    logit scale/bias and SigLIP head (no decay), the VACSR adapter (its own lr and decay)."""
    learn_scale = cfg.learnable_scale and cfg.method in LOSS_PRESETS
    mult = {"image": 0.0 if cfg.freeze == "image" else cfg.lr_mult_image, "text": 0.0 if cfg.freeze == "text" else cfg.lr_mult_text}
    groups: dict[tuple, list] = {}
    for name, p in trainable.clip.named_parameters():
        tower = _tower(name)
        frozen = (tower == "logit" and not learn_scale) or (tower != "logit" and mult[tower] == 0) or name.startswith(cfg.freeze_prefixes or ("\0",))
        p.requires_grad_(not frozen)
        if frozen:
            continue
        decay = tower != "logit" and p.ndim >= 2 and "embedding" not in name
        lr = _vacsr_tower_lr(cfg, tower) * (mult.get(tower, 1.0))
        groups.setdefault((tower, decay, lr), []).append(p)
    param_groups = [{"params": ps, "weight_decay": cfg.weight_decay if decay else 0.0, "lr": lr, "name": f"{tower}{'' if decay else '-nodecay'}"}
                    for (tower, decay, lr), ps in groups.items()]
    if trainable.head is not None:
        param_groups.append({"params": list(trainable.head.parameters()), "weight_decay": 0.0, "lr": cfg.lr, "name": "siglip-head"})
    if trainable.vacsr is not None:
        param_groups.append({"params": list(trainable.vacsr.parameters()), "weight_decay": cfg.vacsr_option("weight_decay"),
                             "lr": cfg.vacsr_option("lr"), "name": "vacsr-adapter"})
    if not any(g["params"] for g in param_groups):
        raise VlmkitError("TrainConfig: every parameter is frozen; nothing to train")
    return torch.optim.AdamW(param_groups, lr=cfg.lr)


def _vacsr_tower_lr(cfg: TrainConfig, tower: str) -> float:
    """A tower's base lr: ``cfg.lr``, or for ``vacsr-joint`` with ``vacsr["text_lr_frac"]`` /
    ``["image_lr_frac"]`` set, that fraction of the adapter's lr (the paper: ×0.1 / ×0.01)."""
    if cfg.method != "vacsr-joint" or tower not in ("image", "text"):
        return cfg.lr
    frac = cfg.vacsr_option(f"{tower}_lr_frac")
    return cfg.lr if frac is None else cfg.vacsr_option("lr") * float(frac)


def warm_start_adapter(cfg: TrainConfig, loaded: LoadedModel, train, vacsr: nn.Module, batch_size: int) -> list[dict]:
    """``vacsr-joint``'s warm start: train the adapter on frozen features of ``train`` (the
    pretrained encoders, before any joint step) with :func:`vlmkit.vacsr.train_on_features` and
    load its weights into ``vacsr.adapter``; returns that training's history."""
    from ..vacsr import train_on_features

    _, _, enc_amp = _amp(cfg, loaded.device)
    was = loaded.model.training
    feats = encode_dataset(loaded, train, batch_size=cfg.eval_batch_size, amp=enc_amp)
    loaded.model.train(was)
    warm, hist = train_on_features(feats.images, feats.texts, torch.as_tensor(np.asarray(train.caption_image)),
                                   vacsr.adapter.config, epochs=int(cfg.vacsr_option("warm_epochs")),
                                   batch_size=batch_size, lr=cfg.vacsr_option("warm_lr"), seed=cfg.seed,
                                   device=loaded.device, show_progress=False)
    vacsr.adapter.load_state_dict(warm.state_dict())
    vacsr.adapter.train()
    return hist


def _schedule(cfg: TrainConfig, opt: torch.optim.Optimizer, total: int, steps_per_epoch: int, last_step: int = -1):
    """warm-up + cosine (:func:`warmup_cosine`), or for ``vacsr-joint`` with ``vacsr["schedule"]
    == "step"`` the VACSR paper's: constant, ×0.1 from epoch round(step_frac · epochs) on."""
    if cfg.method == "vacsr-joint" and cfg.vacsr_option("schedule") == "step":
        at = int(round(cfg.vacsr_option("step_frac") * cfg.epochs)) * steps_per_epoch
        return step_decay(opt, at, 0.1, last_step=last_step)
    return warmup_cosine(opt, int(cfg.warmup_frac * total), total, last_step=last_step)


def _amp(cfg: TrainConfig, dev: torch.device):
    """(autocast context factory, GradScaler or None, amp argument for encode_dataset)."""
    if dev.type != "cuda" or cfg.amp == "off":
        return (lambda: nullcontext()), None, False
    dtype = torch.float16 if cfg.amp == "fp16" else torch.bfloat16
    if cfg.amp == "auto" and not torch.cuda.is_bf16_supported():
        dtype = torch.float16
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    return (lambda: torch.autocast("cuda", dtype=dtype)), scaler, True


# --------------------------------------------------------------------------- evaluation


@torch.no_grad()
def validate(loaded: LoadedModel, val, adapter: nn.Module | None = None, *, batch_size: int = 256, amp: bool | str = "auto") -> dict:
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


# --------------------------------------------------------------------------- the loop


def finetune(cfg: TrainConfig, out_dir: str | os.PathLike, resume: bool = True, *, stop_after_epochs: int | None = None) -> FinetuneResult:
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


def _run(cfg: TrainConfig, out_dir: Path, resume: bool, stop_after: int | None, info: D.DistInfo, t0: float) -> FinetuneResult:
    dev = info.device
    if cfg.batch_size % info.world_size:
        raise VlmkitError(f"TrainConfig.batch_size={cfg.batch_size} must be divisible by the {info.world_size} processes")
    if cfg.batch_size // info.world_size < 1:
        raise VlmkitError("TrainConfig.batch_size: fewer captions than processes")
    train, val = load_splits(cfg)
    n_local = cfg.batch_size // info.world_size
    captions = training_captions(cfg, train)
    steps_per_epoch = len(captions) // cfg.batch_size
    if steps_per_epoch < 1:
        per = "" if cfg.captions_per_image is None else f" (captions_per_image={cfg.captions_per_image})"
        raise VlmkitError(f"TrainConfig.batch_size={cfg.batch_size} exceeds the {len(captions)} training captions{per} of {train.name}")
    ckpt_path = out_dir / CHECKPOINT
    ckpt = None
    if resume and ckpt_path.is_file():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        ckpt["config"] = {**TrainConfig().to_dict(), **ckpt["config"]}  # fields added since take their defaults
        if _comparable(ckpt["config"]) != _comparable(cfg.to_dict()):
            diff = sorted(k for k in _comparable(cfg.to_dict()) if ckpt["config"].get(k) != cfg.to_dict()[k])
            raise VlmkitError(f"{ckpt_path}: written for a different configuration (fields {diff}); use another out_dir or resume=False")
        if ckpt["config"]["epochs"] != cfg.epochs:
            warnings.warn(f"resuming with epochs={cfg.epochs} (checkpoint planned {ckpt['config']['epochs']}): the cosine schedule is re-planned")

    seed_everything(cfg.seed)
    loaded = load_model(cfg.model, cfg.pretrained, device=dev)
    loaded.pretrained = cfg.pretrained
    if cfg.grad_checkpointing:
        loaded.model.set_grad_checkpointing(True)
    head = vacsr = None
    if cfg.method == "sigmoid":
        from ..losses.sigmoid import SIGLIP_INIT_LOGIT_BIAS, SIGLIP_INIT_LOGIT_SCALE

        head = nn.ParameterDict({"logit_scale": nn.Parameter(torch.tensor(math.log(SIGLIP_INIT_LOGIT_SCALE))),
                                 "logit_bias": nn.Parameter(torch.tensor(SIGLIP_INIT_LOGIT_BIAS))}).to(dev)
    elif cfg.method == "vacsr-joint":
        from ..vacsr import VACSRLoss

        vacsr = VACSRLoss(cfg.vacsr_config(loaded.embed_dim), batch_size=n_local).to(dev)  # −log B prior on the local batch
        if ckpt is None and cfg.vacsr_option("warm_start") == "features":
            warm_start_adapter(cfg, loaded, train, vacsr, n_local)
    trainable = _Trainable(loaded.model, head, vacsr)
    opt = build_optimizer(cfg, trainable)
    total = cfg.epochs * steps_per_epoch
    sched = _schedule(cfg, opt, total, steps_per_epoch)
    autocast, scaler, enc_amp = _amp(cfg, dev)
    tau = base_temperature(cfg, loaded.model)  # from the pretrained weights, before any resume
    loss_fn = make_loss(cfg.method, **{"tau": tau, **cfg.loss_overrides}) if cfg.method in LOSS_PRESETS else None

    history: list[dict] = []
    step, start_epoch, best_rsum, best_epoch = 0, 0, float("-inf"), -1
    if ckpt is not None:
        trainable.load_state_dict(ckpt["trainable"])
        opt.load_state_dict(ckpt["optimizer"])
        for g in opt.param_groups:  # checkpoints from before the scheduler kept the peak lr as base_lr
            g.setdefault("initial_lr", g.get("base_lr", g["lr"]))
        # the schedule rebuilt at the checkpoint's step (re-planned when epochs changed)
        sched = _schedule(cfg, opt, total, steps_per_epoch, last_step=ckpt["step"] - 1)
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
    learn_scale = cfg.learnable_scale and cfg.method in LOSS_PRESETS
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
                logs: dict[str, float] = {}
                if loss_fn is not None:
                    out = loss_fn(all_img, all_txt, generator=gen, epoch=epoch, logit_scale=scale.float() if learn_scale else None,
                                  local_offset=off, local_size=size)
                    loss, logs = out.total, {k: v for k, v in out.logs.items() if not k.startswith("lambda_") and k != "mix_scale"}
                elif head is not None:
                    loss = sigmoid_loss(all_img, all_txt, trainable.head["logit_scale"].exp(), trainable.head["logit_bias"],
                                        local_offset=off, local_size=size)
                else:  # vacsr-joint: the adapter on the local batch (+ InfoNCE on the global one)
                    vgen = torch.Generator(device=dev).manual_seed(int(cfg.seed) * 1_000_003 + step)
                    loss, terms = trainable.vacsr(img, txt, image_ids=img_idx, caption_image_ids=img_idx, generator=vgen)
                    logs = {f"vacsr_{k}": v for k, v in terms.items()}
                    cw = cfg.vacsr_option("contrastive_weight")
                    if cw > 0:
                        c = contrastive_loss(all_img, all_txt, temperature=0.01, local_offset=off, local_size=size)
                        logs["contrastive"] = c.detach()
                        loss = loss + cw * c
            opt.zero_grad(set_to_none=True)
            if not torch.isfinite(loss):
                raise VlmkitError(f"non-finite loss at epoch {epoch + 1}, step {step} ({cfg.method}); lower lr or use amp='off'/'bf16'")
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
        if loss_fn is not None:
            row["tau"] = loss_fn.tau
        row.update({("train_" + k if k != "loss" else "train_loss"): v / steps_per_epoch for k, v in sums.items()})
        row.update(validate(loaded, val, trainable.vacsr.adapter if vacsr is not None else None, batch_size=cfg.eval_batch_size, amp=enc_amp))
        row["seconds"] = round(time.time() - t_epoch, 2)
        row["step_ms"] = round(1000 * train_seconds / steps_per_epoch, 2)
        history.append(row)
        improved = row["rsum"] > best_rsum
        if improved:
            best_rsum, best_epoch = row["rsum"], epoch + 1
        if info.is_main:
            if improved:
                _save_best(out_dir / "best", loaded, trainable, cfg, row)
            state = {"trainable": trainable.state_dict(), "optimizer": opt.state_dict(), "scaler": scaler.state_dict() if scaler else None,
                     "step": step, "epoch": epoch + 1, "history": history, "best_rsum": best_rsum, "best_epoch": best_epoch,
                     "rng": _rng_state(), "config": cfg.to_dict(), "world_size": info.world_size}
            atomic_torch_save(state, out_dir / CHECKPOINT)
            _write_history(out_dir, history)
        D.barrier(info)
        epochs_run += 1
    trainable.eval()
    return FinetuneResult(out_dir, out_dir / "best", history, best_epoch, best_rsum, round(time.time() - t0, 2))


def _save_best(path: Path, loaded: LoadedModel, trainable: _Trainable, cfg: TrainConfig, row: dict) -> None:
    extra = {"finetune": {"config": cfg.to_dict(), "epoch": row["epoch"], "rsum": row["rsum"], "val_protocol": row["val_protocol"]}}
    if trainable.head is not None:
        extra["siglip"] = {k: float(v.detach()) for k, v in trainable.head.items()}

    def write(tmp: Path) -> None:
        save_model(loaded, tmp, extra)
        if trainable.vacsr is not None:
            from ..vacsr import save_adapter

            save_adapter(trainable.vacsr.adapter, tmp / "vacsr_adapter", extra={"epoch": row["epoch"]})

    with atomic_dir(path) as tmp:
        write(tmp)


def load_history(out_dir: str | os.PathLike) -> list[dict]:
    """The metric history of a run directory."""
    path = Path(out_dir) / "history.json"
    if not path.is_file():
        raise VlmkitError(f"{path}: no history (not a finetune output directory?)")
    return json.loads(path.read_text())
