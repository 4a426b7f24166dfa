""":class:`TrainConfig`: every switch of the fine-tuning loop, checked before any work starts."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..losses import LOSS_PRESETS, make_loss
from ..utils import VlmkitError

#: methods accepted by :class:`TrainConfig` (the mixup presets come from :mod:`vlmkit.losses`)
METHODS = ("contrastive", "sigmoid", "m2mix", "vmix", "lmix", "vlmix", "all", "vacsr-joint")
AMP_CHOICES = ("auto", "bf16", "fp16", "off")
#: keys of ``TrainConfig.vacsr`` that belong to the loop, not to :class:`~vlmkit.vacsr.VACSRConfig`
VACSR_LOOP_KEYS = {"lr": 1e-3, "weight_decay": 0.0, "contrastive_weight": 1.0}


@dataclass
class TrainConfig:
    """What to fine-tune, on what, and how.

    Data: ``dataset="shapes"`` builds the embedded train/val splits (``train_images``,
    ``val_images``, ``data_seed``). Any other string is a :func:`vlmkit.data.load_dataset`
    spec for the training data; validation then comes from ``val_dataset`` (another spec,
    e.g. ``"karpathy:dataset_coco.json:ROOT:val"``) or, when that is ``None``, from the last
    ``val_images`` images of the loaded dataset, held out of training. ``noise_ratio``
    permutes that share of training captions (:func:`vlmkit.data.shapes.inject_noise`).

    Method: ``"contrastive"`` (fixed τ = 0.01 as in the authors' runs, or the model's
    learnable scale with ``learnable_scale=True``), ``"sigmoid"`` (SigLIP, learnable scale and
    bias initialised to log 10 and −10), the mixup presets ``m2mix/vmix/lmix/vlmix/all``
    (``loss_overrides`` tweak any :class:`~vlmkit.losses.GeodesicMixupLoss` field) and
    ``"vacsr-joint"`` (encoders and a VACSR adapter trained together; ``vacsr`` holds
    :class:`~vlmkit.vacsr.VACSRConfig` fields plus ``lr`` (adapter lr, 1e-3),
    ``weight_decay`` (0) and ``contrastive_weight`` (1: weight of the InfoNCE term added to
    the VACSR loss, which keeps the embedding space aligned)).

    Optimisation: AdamW, linear warm-up over ``warmup_frac`` of the steps then cosine decay to
    0, gradient-norm clipping (``grad_clip=0`` switches it off). ``freeze`` freezes a whole
    tower, ``freeze_prefixes`` any parameters whose names start with one of the prefixes
    (e.g. ``"visual.transformer.resblocks.0."``: a partly frozen tower); ``lr_mult_image`` /
    ``lr_mult_text`` scale the lr of each tower (0 also freezes it). ``eval_mode=True`` keeps
    the model in eval mode while training (no dropout; the authors' m²-Mix runs).
    """

    method: str = "contrastive"
    model: str = "vlmkit-tiny"
    pretrained: str | None = None
    dataset: str = "shapes"
    val_dataset: str | None = None
    train_images: int = 5000
    val_images: int = 1000
    data_seed: int = 0
    noise_ratio: float = 0.0
    epochs: int = 3
    batch_size: int = 128
    lr: float = 1e-4
    weight_decay: float = 0.1
    warmup_frac: float = 0.1
    grad_clip: float = 1.0
    freeze: str | None = None
    freeze_prefixes: tuple[str, ...] = ()
    lr_mult_image: float = 1.0
    lr_mult_text: float = 1.0
    eval_mode: bool = False
    amp: str = "auto"
    grad_checkpointing: bool = False
    learnable_scale: bool = False
    seed: int = 0
    device: str = "auto"
    eval_batch_size: int = 256
    loss_overrides: dict[str, Any] = field(default_factory=dict)
    vacsr: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.freeze_prefixes = tuple(self.freeze_prefixes)
        if isinstance(self.amp, bool) or self.amp is None:
            self.amp = "auto" if self.amp else "off"
        self.validate()

    def validate(self) -> None:
        """Raise :class:`VlmkitError` naming the first bad field (before any data or model work)."""

        def bad(name: str, expected: str) -> None:
            raise VlmkitError(f"TrainConfig.{name}={getattr(self, name)!r}: expected {expected}")

        if self.method not in METHODS:
            bad("method", f"one of {', '.join(METHODS)}")
        for name in ("epochs", "train_images", "val_images", "eval_batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                bad(name, "an integer ≥ 1")
        if not isinstance(self.batch_size, int) or self.batch_size < 2:
            bad("batch_size", "an integer ≥ 2 (a contrastive batch needs negatives)")
        for name in ("lr",):
            if not (isinstance(self.lr, (int, float)) and self.lr > 0 and math.isfinite(self.lr)):
                bad(name, "a finite number > 0")
        for name in ("weight_decay", "grad_clip", "lr_mult_image", "lr_mult_text"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and v >= 0 and math.isfinite(v)):
                bad(name, "a finite number ≥ 0")
        if not 0 <= self.warmup_frac < 1:
            bad("warmup_frac", "a fraction in [0, 1)")
        if not 0 <= self.noise_ratio <= 1:
            bad("noise_ratio", "a fraction in [0, 1]")
        if self.freeze not in (None, "image", "text"):
            bad("freeze", "None, 'image' or 'text'")
        if self.amp not in AMP_CHOICES:
            bad("amp", f"one of {AMP_CHOICES} (or a bool)")
        if not isinstance(self.dataset, str) or not self.dataset:
            bad("dataset", "'shapes' or a vlmkit.data.load_dataset spec string")
        frozen = {"image": self.freeze == "image" or self.lr_mult_image == 0, "text": self.freeze == "text" or self.lr_mult_text == 0}
        if all(frozen.values()) and self.method != "vacsr-joint":
            raise VlmkitError("TrainConfig: both towers are frozen (freeze / lr_mult_* = 0); nothing would be trained")
        if self.method in LOSS_PRESETS:
            make_loss(self.method, **self.loss_overrides)  # raises on unknown keys, negative weights, α ≤ 0
        elif self.loss_overrides:
            bad("loss_overrides", f"an empty dict for method {self.method!r} (overrides apply to the contrastive/mixup presets)")
        if self.vacsr and self.method != "vacsr-joint":
            bad("vacsr", "an empty dict unless method='vacsr-joint'")
        if self.method == "vacsr-joint":
            self.vacsr_config(dim=8)  # validates the adapter fields
            for key in ("lr", "weight_decay", "contrastive_weight"):
                v = self.vacsr.get(key, VACSR_LOOP_KEYS[key])
                if not (isinstance(v, (int, float)) and v >= 0 and math.isfinite(v)) or (key == "lr" and v == 0):
                    raise VlmkitError(f"TrainConfig.vacsr[{key!r}]={v!r}: expected a finite number {'> 0' if key == 'lr' else '≥ 0'}")

    def vacsr_config(self, dim: int):
        """The adapter's :class:`~vlmkit.vacsr.VACSRConfig` (``dim`` = the model's embedding size)."""
        from ..vacsr import VACSRConfig

        allowed = {f.name for f in fields(VACSRConfig)}
        kw = {k: v for k, v in self.vacsr.items() if k not in VACSR_LOOP_KEYS}
        unknown = sorted(set(kw) - allowed)
        if unknown:
            raise VlmkitError(f"TrainConfig.vacsr: unknown key {unknown[0]!r}; expected VACSRConfig fields or {sorted(VACSR_LOOP_KEYS)}")
        return VACSRConfig(**{"dim": dim, **kw})

    def vacsr_option(self, key: str) -> float:
        return float(self.vacsr.get(key, VACSR_LOOP_KEYS[key]))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["freeze_prefixes"] = list(self.freeze_prefixes)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise VlmkitError(f"TrainConfig: unknown field {unknown[0]!r}")
        return cls(**d)
