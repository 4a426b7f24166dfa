"""Training methods as objects (issue #18): everything that makes one fine-tuning method differ
from another, in one place, registered by name in :data:`METHOD_REGISTRY`.

A :class:`Method` owns, for its name:

* the configuration checks of its own fields (:meth:`Method.validate`; ``loss_overrides`` for the
  contrastive / mixup presets, ``vacsr`` for ``vacsr-joint``);
* its own trainable module beside the CLIP model (:meth:`~Method.build`: SigLIP's scale and bias,
  the VACSR adapter with its warm start), stored under :attr:`~Method.attribute` of the loop's
  trainable (so the checkpoint's keys are ``clip.*`` and ``<attribute>.*``);
* the optimiser's tower lr, its extra parameter groups and the lr schedule
  (:meth:`~Method.tower_lr`, :meth:`~Method.param_groups`, :meth:`~Method.schedule`);
* its loss on a step's features (:meth:`~Method.criterion`, a :class:`Criterion`);
* what it adds to the best checkpoint (:meth:`~Method.best_metadata`, :meth:`~Method.save_best`)
  and how it scores test pairs from that checkpoint (:meth:`~Method.score`: the encoders' cosine,
  or the adapter's logit and σ²);
* which training split it belongs on (:meth:`~Method.noise_ratio`: the clean one of the m²-Mix
  comparisons or the noisy-correspondence one of VACSR).

:func:`vlmkit.train.finetune` is the bare loop calling these hooks; notebook 02 and the claims
ledger call :meth:`~Method.score` / :meth:`~Method.test_outputs` / :meth:`~Method.noise_ratio`
with no special case for any name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from ..losses import LOSS_PRESETS, contrastive_loss, make_loss, sigmoid_loss
from ..utils import VlmkitError
from .amp import autocast_setup
from ..schedule import step_decay, warmup_cosine

#: keys of ``TrainConfig.vacsr`` that belong to the loop, not to :class:`~vlmkit.vacsr.VACSRConfig`
VACSR_LOOP_KEYS = {"lr": 1e-3, "weight_decay": 0.0, "contrastive_weight": 0.0, "preset": None, "schedule": "step",
                   "step_frac": 0.6, "warm_start": "features", "warm_epochs": 3, "warm_lr": 1e-3,
                   "text_lr_frac": 0.1, "image_lr_frac": 0.01}
VACSR_PRESETS = (None, "paper")
VACSR_SCHEDULES = ("step", "cosine")
VACSR_WARM_STARTS = ("features", "none")


def _bad(cfg: Any, name: str, expected: str) -> VlmkitError:
    return VlmkitError(f"TrainConfig.{name}={getattr(cfg, name)!r}: expected {expected}")


@dataclass
class Batch:
    """One training step as the loss sees it: this process's features (``img``, ``txt``, float32,
    unit norm), the global batch (``all_img``, ``all_txt``: gathered over DDP ranks; this rank's
    rows at ``offset`` … ``offset + size``), the model's exp(logit_scale), the image index of each
    local caption, the step's CPU generator (seeded with ``(seed, step)``) and the epoch."""

    img: Tensor
    txt: Tensor
    all_img: Tensor
    all_txt: Tensor
    offset: int
    size: int
    scale: Tensor
    image_ids: Tensor
    generator: torch.Generator
    seed: int
    step: int
    epoch: int


class Criterion:
    """A method's loss for one run: ``criterion(batch) → (loss, logs)``; :meth:`epoch_fields`
    are written into each epoch's history row (before the training means)."""

    def __call__(self, batch: Batch) -> tuple[Tensor, dict[str, Any]]:  # pragma: no cover (abstract)
        raise NotImplementedError

    def epoch_fields(self) -> dict[str, Any]:
        return {}


class Method:
    """The base of every training method: an encoder method with no module of its own, trained
    with warm-up + cosine at ``cfg.lr`` on the clean split, scored by the encoders' cosine."""

    name: str = ""
    #: the attribute (and checkpoint prefix) of the method's own module in the loop's trainable
    attribute: str | None = None
    #: True: trains on the noisy-correspondence split (VACSR's); False: the clean one (m²-Mix's)
    noisy: bool = False
    #: what :meth:`score` returns: ``"cosine"`` (the encoders') or ``"logit"`` (its own scorer)
    score_kind: str = "cosine"
    #: False: the method trains parameters of its own, so both towers may be frozen
    needs_towers: bool = True
    description: str = ""

    # -- configuration
    def validate(self, cfg: Any) -> None:
        """Raise :class:`VlmkitError` naming the first bad field this method owns."""
        self._no_loss_overrides(cfg)
        self._no_vacsr(cfg)

    def _no_loss_overrides(self, cfg: Any) -> None:
        if cfg.loss_overrides:
            raise _bad(cfg, "loss_overrides", f"an empty dict for method {self.name!r} "
                                              "(overrides apply to the contrastive/mixup presets)")

    @staticmethod
    def _no_vacsr(cfg: Any) -> None:
        if cfg.vacsr:
            raise _bad(cfg, "vacsr", "an empty dict unless method='vacsr-joint'")

    def noise_ratio(self, clean: float, noisy: float) -> float:
        """The share of permuted training captions this method trains on, given the clean
        setting (the fine-tuning comparisons') and the noisy one (VACSR's)."""
        return noisy if self.noisy else clean

    # -- model and optimiser
    def build(self, cfg: Any, loaded: Any, train: Any, n_local: int, device: torch.device, *,
              fresh: bool) -> nn.Module | None:
        """The method's own trainable module (None: none); ``fresh`` is False when a checkpoint
        will be loaded into it (no warm start then)."""
        return None

    def learns_scale(self, cfg: Any) -> bool:
        """Whether the model's own logit scale is trained (and clamped to [0, log 100])."""
        return False

    def tower_lr(self, cfg: Any, tower: str) -> float:
        """The base lr of a tower (``"image"``, ``"text"``, ``"logit"``), before ``lr_mult_*``."""
        return cfg.lr

    def param_groups(self, cfg: Any, module: nn.Module | None) -> list[dict]:
        """AdamW groups of the method's own module (after the towers' groups)."""
        return []

    def schedule(self, cfg: Any, opt: torch.optim.Optimizer, total: int, steps_per_epoch: int, last_step: int = -1):
        """The lr schedule (:func:`~vlmkit.schedule.warmup_cosine` over ``warmup_frac``)."""
        return warmup_cosine(opt, int(cfg.warmup_frac * total), total, last_step=last_step)

    def criterion(self, cfg: Any, loaded: Any, module: nn.Module | None) -> Criterion:  # pragma: no cover (abstract)
        raise NotImplementedError

    # -- validation, checkpoints, scoring
    def val_adapter(self, module: nn.Module | None) -> nn.Module | None:
        """The adapter validation ranks by (None: the encoders' cosine)."""
        return None

    def best_metadata(self, module: nn.Module | None) -> dict:
        """Entries added to the best checkpoint's ``open_clip_config.json`` (``vlmkit`` key)."""
        return {}

    def save_best(self, module: nn.Module | None, directory: Path, row: dict) -> None:
        """Files of the method's own written into the best checkpoint's directory."""

    def score(self, best_dir: str | Path, img: Tensor, txt: Tensor, *,
              device: str | torch.device = "auto") -> tuple[Tensor, Tensor | None]:
        """(scores N×M, uncertainty N×M or None) of test features ``img`` (N×d) and ``txt`` (M×d)
        encoded by the checkpoint ``best_dir``: here the cosine ``img @ txt.T`` (unit features)."""
        return torch.as_tensor(img).float() @ torch.as_tensor(txt).float().T, None

    def test_outputs(self, best_dir: str | Path, img: Tensor, txt: Tensor, *,
                     device: str | torch.device = "auto") -> dict:
        """What :func:`vlmkit.workbook.register_method` stores for this method: the features, and
        the method's own scores and uncertainty when it has a scorer of its own."""
        if self.score_kind == "cosine":  # the registry derives the cosine from the features
            return {"img": img, "txt": txt}
        scores, unc = self.score(best_dir, img, txt, device=device)
        return {"img": img, "txt": txt, "scores": scores, "uncertainty": unc}


# --------------------------------------------------------------------------- contrastive / mixup


def base_temperature(cfg: Any, model: nn.Module) -> float:
    """τ of the base InfoNCE (and the V/L/VL mix terms): ``cfg.temperature``, or when that is
    ``None`` the model's own learned τ = 1 / exp(logit_scale) (the authors' 0.01 is CLIP's);
    ``loss_overrides["tau"]`` wins over both."""
    if "tau" in cfg.loss_overrides:
        return float(cfg.loss_overrides["tau"])
    if cfg.temperature is not None:
        return float(cfg.temperature)
    from ..models import learned_temperature

    return learned_temperature(model)


class _MixupCriterion(Criterion):
    def __init__(self, loss_fn: Any, learn_scale: bool):
        self.loss_fn, self.learn_scale = loss_fn, learn_scale

    def __call__(self, b: Batch) -> tuple[Tensor, dict[str, Any]]:
        out = self.loss_fn(b.all_img, b.all_txt, generator=b.generator, epoch=b.epoch,
                           logit_scale=b.scale.float() if self.learn_scale else None, local_offset=b.offset,
                           local_size=b.size)
        return out.total, {k: v for k, v in out.logs.items() if not k.startswith("lambda_") and k != "mix_scale"}

    def epoch_fields(self) -> dict[str, Any]:
        return {"tau": self.loss_fn.tau}


class MixupMethod(Method):
    """A :data:`vlmkit.losses.LOSS_PRESETS` loss (``contrastive``: InfoNCE alone; the m²-Mix
    family): :class:`~vlmkit.losses.GeodesicMixupLoss` at the base τ (:func:`base_temperature`)
    with ``loss_overrides``; the model's logit scale trained with ``learnable_scale=True``."""

    def __init__(self, name: str):
        self.name = name
        self.description = f"GeodesicMixupLoss preset {name!r} (vlmkit.losses.LOSS_PRESETS)"

    def validate(self, cfg: Any) -> None:
        make_loss(self.name, **cfg.loss_overrides)  # raises on unknown keys, negative weights, α ≤ 0
        self._no_vacsr(cfg)

    def learns_scale(self, cfg: Any) -> bool:
        return bool(cfg.learnable_scale)

    def criterion(self, cfg: Any, loaded: Any, module: nn.Module | None) -> Criterion:
        tau = base_temperature(cfg, loaded.model)  # from the pretrained weights, before any resume
        return _MixupCriterion(make_loss(self.name, **{"tau": tau, **cfg.loss_overrides}), self.learns_scale(cfg))


# --------------------------------------------------------------------------- sigmoid


class _SigmoidCriterion(Criterion):
    def __init__(self, head: nn.ParameterDict):
        self.head = head

    def __call__(self, b: Batch) -> tuple[Tensor, dict[str, Any]]:
        return sigmoid_loss(b.all_img, b.all_txt, self.head["logit_scale"].exp(), self.head["logit_bias"],
                            local_offset=b.offset, local_size=b.size), {}


class SigmoidMethod(Method):
    """SigLIP's pairwise sigmoid loss with its own learnable scale and bias (initialised to
    log 10 and −10, no weight decay, at ``cfg.lr``), saved as ``siglip`` in the checkpoint's
    metadata."""

    name = "sigmoid"
    attribute = "head"
    description = "SigLIP sigmoid loss, learnable scale and bias"

    def build(self, cfg: Any, loaded: Any, train: Any, n_local: int, device: torch.device, *, fresh: bool) -> nn.Module:
        from ..losses.sigmoid import SIGLIP_INIT_LOGIT_BIAS, SIGLIP_INIT_LOGIT_SCALE

        return nn.ParameterDict({"logit_scale": nn.Parameter(torch.tensor(math.log(SIGLIP_INIT_LOGIT_SCALE))),
                                 "logit_bias": nn.Parameter(torch.tensor(SIGLIP_INIT_LOGIT_BIAS))}).to(device)

    def param_groups(self, cfg: Any, module: nn.Module | None) -> list[dict]:
        return [{"params": list(module.parameters()), "weight_decay": 0.0, "lr": cfg.lr, "name": "siglip-head"}]

    def criterion(self, cfg: Any, loaded: Any, module: nn.Module | None) -> Criterion:
        return _SigmoidCriterion(module)

    def best_metadata(self, module: nn.Module | None) -> dict:
        return {"siglip": {k: float(v.detach()) for k, v in module.items()}}


# --------------------------------------------------------------------------- vacsr-joint


def warm_start_adapter(cfg: Any, loaded: Any, train: Any, vacsr: nn.Module, batch_size: int) -> list[dict]:
    """``vacsr-joint``'s warm start: train the adapter on frozen features of ``train`` (the
    pretrained encoders, before any joint step) with :func:`vlmkit.vacsr.train_on_features` and
    load its weights into ``vacsr.adapter``; returns that training's history."""
    from ..features import encode_dataset
    from ..vacsr import train_on_features

    _, _, enc_amp = autocast_setup(cfg, loaded.device)
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


class _VacsrCriterion(Criterion):
    def __init__(self, vacsr: nn.Module, contrastive_weight: float):
        self.vacsr, self.cw = vacsr, contrastive_weight

    def __call__(self, b: Batch) -> tuple[Tensor, dict[str, Any]]:
        # the adapter on the local batch (+ InfoNCE on the global one)
        vgen = torch.Generator(device=b.img.device).manual_seed(int(b.seed) * 1_000_003 + b.step)
        loss, terms = self.vacsr(b.img, b.txt, image_ids=b.image_ids, caption_image_ids=b.image_ids, generator=vgen)
        logs = {f"vacsr_{k}": v for k, v in terms.items()}
        if self.cw > 0:
            c = contrastive_loss(b.all_img, b.all_txt, temperature=0.01, local_offset=b.offset, local_size=b.size)
            logs["contrastive"] = c.detach()
            loss = loss + self.cw * c
        return loss, logs


class VacsrJointMethod(Method):
    """``vacsr-joint``: the encoders and a VACSR adapter trained together on the paper's Eq. 13
    (:class:`~vlmkit.vacsr.VACSRLoss` on the local batch; ``vacsr["contrastive_weight"]`` > 0
    adds InfoNCE on the global one), the adapter warm-started on frozen features, its own lr and
    decay, the towers at ``text_lr_frac`` / ``image_lr_frac`` of it, the paper's step schedule;
    validated, saved (``vacsr_adapter/``) and scored (logit, σ²) by the adapter; trains on the
    noisy-correspondence split. The keys are documented in :class:`~vlmkit.train.TrainConfig`."""

    name = "vacsr-joint"
    attribute = "vacsr"
    noisy = True
    score_kind = "logit"
    needs_towers = False
    description = "encoders and VACSR adapter trained together (Eq. 13)"

    def validate(self, cfg: Any) -> None:
        self._no_loss_overrides(cfg)
        cfg.vacsr_config(dim=8)  # validates the adapter fields
        for key in ("lr", "weight_decay", "contrastive_weight"):
            v = cfg.vacsr.get(key, VACSR_LOOP_KEYS[key])
            if not (isinstance(v, (int, float)) and v >= 0 and math.isfinite(v)) or (key == "lr" and v == 0):
                raise VlmkitError(f"TrainConfig.vacsr[{key!r}]={v!r}: "
                                  f"expected a finite number {'> 0' if key == 'lr' else '≥ 0'}")
        for key in ("warm_lr", "text_lr_frac", "image_lr_frac"):
            v = cfg.vacsr.get(key, VACSR_LOOP_KEYS[key])
            if v is None and key != "warm_lr":
                continue
            if (not (isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 and math.isfinite(v))
                    or (key == "warm_lr" and v == 0)):
                raise VlmkitError(f"TrainConfig.vacsr[{key!r}]={v!r}: expected a finite number "
                                  f"{'> 0' if key == 'warm_lr' else '≥ 0 (or None: the towers at lr)'}")
        we = cfg.vacsr.get("warm_epochs", VACSR_LOOP_KEYS["warm_epochs"])
        if not isinstance(we, int) or isinstance(we, bool) or we < 1:
            raise VlmkitError(f"TrainConfig.vacsr['warm_epochs']={we!r}: expected an integer ≥ 1")
        for key, choices in (("preset", VACSR_PRESETS), ("schedule", VACSR_SCHEDULES),
                             ("warm_start", VACSR_WARM_STARTS)):
            if cfg.vacsr.get(key, VACSR_LOOP_KEYS[key]) not in choices:
                raise VlmkitError(f"TrainConfig.vacsr[{key!r}]={cfg.vacsr[key]!r}: expected one of {choices}")
        f = cfg.vacsr.get("step_frac", VACSR_LOOP_KEYS["step_frac"])
        if not (isinstance(f, (int, float)) and 0 < f <= 1):
            raise VlmkitError(f"TrainConfig.vacsr['step_frac']={f!r}: expected a fraction in (0, 1]")

    def build(self, cfg: Any, loaded: Any, train: Any, n_local: int, device: torch.device, *, fresh: bool) -> nn.Module:
        from ..vacsr import VACSRLoss

        # −log B prior on the local batch
        vacsr = VACSRLoss(cfg.vacsr_config(loaded.embed_dim), batch_size=n_local).to(device)
        if fresh and cfg.vacsr_option("warm_start") == "features":
            warm_start_adapter(cfg, loaded, train, vacsr, n_local)
        return vacsr

    def tower_lr(self, cfg: Any, tower: str) -> float:
        """``cfg.lr``, or with ``vacsr["text_lr_frac"]`` / ``["image_lr_frac"]`` set, that
        fraction of the adapter's lr (the paper: ×0.1 / ×0.01)."""
        if tower not in ("image", "text"):
            return cfg.lr
        frac = cfg.vacsr_option(f"{tower}_lr_frac")
        return cfg.lr if frac is None else cfg.vacsr_option("lr") * float(frac)

    def param_groups(self, cfg: Any, module: nn.Module | None) -> list[dict]:
        return [{"params": list(module.parameters()), "weight_decay": cfg.vacsr_option("weight_decay"),
                 "lr": cfg.vacsr_option("lr"), "name": "vacsr-adapter"}]

    def schedule(self, cfg: Any, opt: torch.optim.Optimizer, total: int, steps_per_epoch: int, last_step: int = -1):
        """With ``vacsr["schedule"] == "step"`` the VACSR paper's: constant, ×0.1 from epoch
        round(step_frac · epochs) on; else the loop's warm-up + cosine."""
        if cfg.vacsr_option("schedule") == "step":
            at = int(round(cfg.vacsr_option("step_frac") * cfg.epochs)) * steps_per_epoch
            return step_decay(opt, at, 0.1, last_step=last_step)
        return super().schedule(cfg, opt, total, steps_per_epoch, last_step)

    def criterion(self, cfg: Any, loaded: Any, module: nn.Module | None) -> Criterion:
        return _VacsrCriterion(module, cfg.vacsr_option("contrastive_weight"))

    def val_adapter(self, module: nn.Module | None) -> nn.Module | None:
        return module.adapter

    def save_best(self, module: nn.Module | None, directory: Path, row: dict) -> None:
        from ..vacsr import save_adapter

        save_adapter(module.adapter, Path(directory) / "vacsr_adapter", extra={"epoch": row["epoch"]})

    def score(self, best_dir: str | Path, img: Tensor, txt: Tensor, *,
              device: str | torch.device = "auto") -> tuple[Tensor, Tensor | None]:
        """The adapter of ``best_dir/vacsr_adapter`` on the test features: (logit, σ²)."""
        from ..vacsr import load_adapter, score_all

        adapter = load_adapter(Path(best_dir) / "vacsr_adapter", device=device)
        return score_all(adapter, img, txt, device=device, show_progress=False)


# --------------------------------------------------------------------------- the registry


def _registry() -> dict[str, Method]:
    methods: list[Method] = [MixupMethod("contrastive"), SigmoidMethod()]
    methods += [MixupMethod(n) for n in LOSS_PRESETS if n != "contrastive"]
    methods.append(VacsrJointMethod())
    return {m.name: m for m in methods}


#: every training method by name: ``contrastive``, ``sigmoid``, the mixup presets of
#: :data:`vlmkit.losses.LOSS_PRESETS`, ``vacsr-joint``
METHOD_REGISTRY: dict[str, Method] = _registry()


def get_method(name: str) -> Method:
    """The :class:`Method` called ``name`` (one of :data:`METHOD_REGISTRY`)."""
    if name not in METHOD_REGISTRY:
        raise VlmkitError(f"method {name!r}: expected one of {', '.join(METHOD_REGISTRY)}")
    return METHOD_REGISTRY[name]
