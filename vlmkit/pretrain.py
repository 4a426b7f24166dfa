"""A small CLIP pretrained here, standing in for a downloaded checkpoint.

:func:`pretrain_tiny` trains a bundled config (``vlmkit-base`` by default) with the CLIP
loss (symmetric InfoNCE, learnable temperature) on the embedded *web domain* (``preset="web"``:
noisy alt-text captions, some about other images, of scenes unlike the coco test split) and saves it with
:func:`vlmkit.models.save_model`.  The result is cached: called again with the same
configuration it loads the saved model instead of training; an interrupted run resumes
from its last partial checkpoint (``out_dir/.partial.pt``, every ``checkpoint_every`` steps).

The checkpoint that the workbook uses is *shipped* (:func:`vlmkit.models.stand_in`), trained in
two stages (:data:`STAGES`): ``stand-in-base`` from random weights (~1 hour on 2 CPU cores, τ
learned), then ``stand-in`` — the default :class:`PretrainConfig` — continuing the shipped base
(``init_from``) with τ held low (``fixed_tau``) on partly re-captioned web data (``web_dense``),
~10 minutes.  Both are shipped: retraining is never on the critical path.
``python -m vlmkit.pretrain --out DIR`` retrains the second stage, ``--stage stand-in-base`` the
first.  Seeded; on CPU two runs give identical loss histories.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .losses import contrastive_loss
from .schedule import decays, warmup_cosine
from .data.loading import CaptionPairs, ImageTensors, tokenize_all
from .data.shapes import make_shapes
from .models.factory import CONFIG_NAME, LoadedModel, load_model, save_model
from .utils import VlmkitError, atomic_dir, atomic_torch_save, fingerprint, progress, seed_everything


@dataclass
class PretrainConfig:
    """What a stand-in checkpoint is trained on and how.

    The defaults are the shipped stand-in's (:data:`STAGES` ``"stand-in"``): the second stage,
    continuing the shipped first stage (``"stand-in-base"``) with τ held at 0.02 on the same web images,
    half of them re-captioned densely.
    """

    model: str = "vlmkit-base"
    n_images: int = 30_000
    web_per_image: int = 2  # noisy captions per image
    # scenes of the embedded preset: "web" (the default) is the web domain (data/README.md), away from the coco test
    # data; "coco" pretrains in-domain
    preset: str = "web"
    data_seed: int = 0
    seed: int = 0
    steps: int = 400
    batch_size: int = 256
    lr: float = 2e-4
    weight_decay: float = 0.1
    warmup_steps: int = 20
    checkpoint_every: int = 100  # steps between resumable partial checkpoints
    # a continuation: start from these weights (a `pretrained=` value: "stand-in-base", a directory) instead of random
    init_from: str | None = "stand-in-base"
    fixed_tau: float | None = 0.02  # hold τ at this value (the logit scale is not learned); None: learned
    web_dense: float = 0.5  # share of dense re-captions among the web captions (alt_text_captions' p_dense)

    def __post_init__(self) -> None:
        for name in ("n_images", "web_per_image", "steps", "batch_size"):
            if getattr(self, name) < 1:
                raise VlmkitError(f"PretrainConfig.{name} must be ≥ 1, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise VlmkitError("PretrainConfig.batch_size must be ≥ 2 for a contrastive loss")
        if self.lr <= 0:
            raise VlmkitError(f"PretrainConfig.lr must be > 0, got {self.lr}")
        if self.fixed_tau is not None and not 0 < self.fixed_tau <= 1:
            raise VlmkitError(f"PretrainConfig.fixed_tau must be in (0, 1] or None, got {self.fixed_tau}")
        if not 0.0 <= self.web_dense <= 1.0 or (self.web_dense and self.preset != "web"):
            raise VlmkitError(f"PretrainConfig.web_dense must be in [0, 1] (and > 0 only with preset 'web'), "
                              f"got {self.web_dense} with preset {self.preset!r}")

    def key(self) -> str:
        d = asdict(self)
        d.pop("checkpoint_every")  # how often we save does not change the weights
        for name in CONTINUATION_FIELDS:  # at their defaults they leave the key of a config without them
            if d[name] == CONTINUATION_FIELDS[name]:
                d.pop(name)
        return fingerprint("pretrain-v2", d)


#: Fields added with the two-stage stand-in; at these values a config keys as one written before them.
CONTINUATION_FIELDS = {"init_from": None, "fixed_tau": None, "web_dense": 0.0}

#: The shipped checkpoints' recipes, by their ``pretrained=`` tag.  ``stand-in-base``: CLIP's recipe from
#: random weights on the web domain's short alt-text, τ learned (it stayed near the 0.07 start);
#: ``stand-in``: 400 more steps from the shipped (fp16) base at τ = 0.02 on the same images, half of the
#: captions dense re-captions — the low τ opens the modality gap, the denser text lifts zero-shot retrieval.
STAGES: dict[str, PretrainConfig] = {
    "stand-in-base": PretrainConfig(steps=2400, lr=5e-4, warmup_steps=100, checkpoint_every=250,
                                    init_from=None, fixed_tau=None, web_dense=0.0),
    "stand-in": PretrainConfig(),
}


def pretrain_tiny(
    out_dir: str | os.PathLike,
    config: PretrainConfig | None = None,
    device: str | torch.device | None = "auto",
    force: bool = False,
    stop_after_steps: int | None = None,
    on_step: Callable[[int, LoadedModel], None] | None = None,
) -> LoadedModel | None:
    """Train (or load the cached) stand-in checkpoint in ``out_dir``; returns it loaded.

    ``stop_after_steps=k`` stops after step ``k`` (counted from 0, not from a resumed step)
    with a resumable partial checkpoint in ``out_dir/.partial.pt`` and returns ``None``: a
    later call with the same configuration resumes there.  ``on_step(done, loaded)`` is called
    after every step (a probe evaluates there; it must leave the model as it found it).
    """
    cfg = config or PretrainConfig()
    out_dir = Path(out_dir)
    cached = _cached(out_dir, cfg)
    if cached and not force:
        return load_model(pretrained=out_dir, device=device)

    seed_everything(cfg.seed)
    loaded = _initial_model(cfg, device)
    ds = make_shapes("pretrain", n_images=cfg.n_images, seed=cfg.data_seed, captions="web",
                     web_per_image=cfg.web_per_image, preset=cfg.preset, web_dense=cfg.web_dense)
    tensors = ImageTensors(ds, loaded.preprocess, loaded.preprocess_cfg)
    pairs = CaptionPairs(ds, tensors, tokenize_all(loaded.tokenizer, ds.captions))
    model, dev = loaded.model, loaded.device
    if cfg.fixed_tau is not None:
        with torch.no_grad():
            model.logit_scale.fill_(math.log(1.0 / cfg.fixed_tau))
        model.logit_scale.requires_grad_(False)
    model.train()
    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in trained if decays(n, p)]
    no_decay = [p for n, p in trained if not decays(n, p)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    gen = np.random.default_rng(cfg.seed)
    order = np.empty(0, dtype=np.int64)
    history: list[float] = []
    seconds = 0.0
    partial = out_dir / ".partial.pt"
    state = _load_partial(partial, cfg)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        gen.bit_generator.state = state["gen"]
        order, history, seconds = state["order"].numpy(), state["history"], state["seconds"]
        torch.set_rng_state(state["torch_rng"])
    for group in opt.param_groups:
        group.setdefault("initial_lr", cfg.lr)
    sched = warmup_cosine(opt, cfg.warmup_steps, cfg.steps, last_step=len(history) - 1)
    start = time.time() - seconds
    bar = progress(range(len(history), cfg.steps), desc="pretrain stand-in CLIP", initial=len(history), total=cfg.steps)
    for step in bar:
        if len(order) < cfg.batch_size:
            order = np.concatenate([order, gen.permutation(len(pairs))])
        js, order = order[: cfg.batch_size], order[cfg.batch_size :]
        x, tokens, _, img = pairs.collate_fast(js)
        img_f, txt_f, scale = model(x.to(dev), tokens.to(dev))
        # Two captions of one image may share a batch: both count as the image's positives.
        loss = contrastive_loss(logits=scale * img_f @ txt_f.T, positives=img[:, None] == img[None, :])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        history.append(float(loss.detach()))
        bar.set_postfix(loss=f"{history[-1]:.3f}", refresh=False)
        done = step + 1
        if on_step is not None:
            on_step(done, loaded)
        stop = stop_after_steps is not None and done >= stop_after_steps and done < cfg.steps
        if (done % cfg.checkpoint_every == 0 and done < cfg.steps) or stop:
            out_dir.mkdir(parents=True, exist_ok=True)
            atomic_torch_save({"key": cfg.key(), "model": model.state_dict(), "opt": opt.state_dict(),
                               "gen": gen.bit_generator.state,
                               "order": torch.from_numpy(order), "history": history, "seconds": time.time() - start,
                               "torch_rng": torch.get_rng_state()}, partial)
        if stop:
            return None
    model.eval()
    extra = {"pretrain_config": asdict(cfg), "pretrain_key": cfg.key(), "loss_history": history,
             "seconds": round(time.time() - start, 1), "torch": torch.__version__, "threads": torch.get_num_threads()}
    _save_atomically(loaded, out_dir, extra)
    partial.unlink(missing_ok=True)
    return load_model(pretrained=out_dir, device=device)


def _initial_model(cfg: PretrainConfig, device) -> LoadedModel:
    """Random weights of ``cfg.model``, or the fp32 weights of ``cfg.init_from`` (a continuation)."""
    if cfg.init_from is None:
        return load_model(cfg.model, device=device)
    loaded = load_model(pretrained=cfg.init_from, device=device)
    if loaded.name != cfg.model:
        raise VlmkitError(f"PretrainConfig.init_from={cfg.init_from!r} is a {loaded.name!r}, "
                          f"but PretrainConfig.model is {cfg.model!r}")
    loaded.model.float()
    return loaded


def _load_partial(path: Path, cfg: PretrainConfig) -> dict | None:
    """The resumable state of an interrupted run with the same configuration, else ``None``."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a torn or foreign file: start over rather than fail
        return None
    return state if isinstance(state, dict) and state.get("key") == cfg.key() else None


def _cached(out_dir: Path, cfg: PretrainConfig) -> bool:
    try:
        meta = json.loads((out_dir / CONFIG_NAME).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return meta.get("vlmkit", {}).get("pretrain_key") == cfg.key()


def _save_atomically(loaded: LoadedModel, out_dir: Path, extra: dict) -> None:
    """Write into a sibling temp dir, then swap it in: never a half-written checkpoint."""
    with atomic_dir(out_dir) as tmp:
        save_model(loaded, tmp, extra)


def main(argv: list[str] | None = None) -> int:
    """``python -m vlmkit.pretrain --out DIR [--steps N] ...``: (re)train the stand-in CLIP."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m vlmkit.pretrain", description=main.__doc__)
    parser.add_argument("--out", required=True, help="output directory (save_model layout)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--force", action="store_true", help="retrain even if a matching checkpoint exists")
    parser.add_argument("--stage", choices=sorted(STAGES), default="stand-in",
                        help="whose recipe the other flags start from (default: the shipped stand-in's)")
    for name in asdict(PretrainConfig()):
        kind = {"init_from": _or_none(str), "fixed_tau": _or_none(float), "web_dense": float}.get(name)
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind or type(getattr(PretrainConfig(), name)),
                            default=argparse.SUPPRESS, help="default: the stage's")
    args = vars(parser.parse_args(argv))
    out, device, force, stage = args.pop("out"), args.pop("device"), args.pop("force"), args.pop("stage")
    pretrain_tiny(out, replace(STAGES[stage], **args), device=device, force=force)
    print(f"saved to {out}")
    return 0


def _or_none(kind: type):
    """An argparse type that reads "none" as ``None`` (``--init-from none`` trains from random weights)."""
    return lambda text: None if text.lower() == "none" else kind(text)


if __name__ == "__main__":
    raise SystemExit(main())
