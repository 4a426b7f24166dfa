""":class:`TrainConfig`: every switch of the fine-tuning loop, checked before any work starts."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..data.spec import parse_spec
from ..recipes import DEFAULT_RECIPE, RECIPES, Recipe, recipe  # noqa: F401 (re-exported)
from ..utils import VlmkitError
from .methods import METHOD_REGISTRY, VACSR_LOOP_KEYS, get_method

#: methods accepted by :class:`TrainConfig`: the names of :data:`vlmkit.train.methods.METHOD_REGISTRY`
#: (the mixup presets come from :data:`vlmkit.losses.LOSS_PRESETS`)
METHODS = tuple(METHOD_REGISTRY)
AMP_CHOICES = ("auto", "bf16", "fp16", "off")


@dataclass
class TrainConfig:
    """What to fine-tune, on what, and how.

    Data: ``dataset="shapes"`` builds the embedded train/val splits (``train_images``,
    ``val_images``, ``data_seed``) of the default coco preset; ``"shapes:stress"`` those of the
    false-negative-heavy stress preset. Any other string is a :func:`vlmkit.data.load_dataset`
    spec for the training data; validation then comes from ``val_dataset`` (another spec,
    e.g. ``"karpathy:dataset_coco.json:ROOT:val"``) or, when that is ``None``, from the last
    ``val_images`` images of the loaded dataset, held out of training. ``noise_ratio``
    permutes that share of training captions (:func:`vlmkit.data.shapes.inject_noise`).
    ``captions_per_image`` picks the training pairs: ``None`` (default) every caption, ``k``
    the first ``k`` captions of each image (:func:`vlmkit.utils.first_captions`); ``1`` is the
    m²-Mix authors' epoch (one pair per image: COCO's first caption, Flickr's first row).

    Method: ``"contrastive"`` (symmetric InfoNCE at a fixed τ: ``temperature``, or when that is
    ``None`` the pretrained model's own learned τ = 1 / exp(logit_scale), held fixed; the model's
    learnable scale with ``learnable_scale=True``), ``"sigmoid"`` (SigLIP, learnable scale and
    bias initialised to log 10 and −10), the mixup presets ``m2mix/vmix/lmix/vlmix/all`` (base and
    V/L/VL terms at the same τ, the m²-Mix term at τ₂ = 0.07;
    ``loss_overrides`` tweak any :class:`~vlmkit.losses.GeodesicMixupLoss` field) and
    ``"vacsr-joint"`` (encoders and a VACSR adapter trained together; ``vacsr`` holds
    :class:`~vlmkit.vacsr.VACSRConfig` fields plus the loop keys ``lr`` (adapter lr, 1e-3: the
    paper's 5e-4 is for 25 epochs; at the stand-in's 2 epochs 5e-4 left ``vacsr-joint`` 10.5
    R@1 points below ``sigmoid``, 1e-3 7.9 over 3 seeds — bench/README.md, issue #19),
    ``weight_decay`` (0), ``contrastive_weight`` (0: the paper's Eq. 13 has no InfoNCE term;
    > 0 adds that weight of InfoNCE on the global batch, an ablation),
    ``preset`` (None: ``VACSRConfig`` defaults; ``"paper"``: :meth:`VACSRConfig.paper_sized`,
    5.25 M parameters at d = 512), ``schedule`` (``"step"``: the paper's constant lr ×0.1 from
    epoch round(``step_frac`` · epochs) on, no warm-up, for every group; ``"cosine"``: the loop's
    warm-up + cosine) and ``step_frac`` (0.6: paper 25 epochs, ×0.1 at epoch 15; scaled to the
    run's epochs). The paper's recipe adapted (issue #19; §C.2 inside PCME++: the heads warm up
    with the image backbone frozen, backbones at a fraction of the head lr, text ×0.1 and image
    ×0.01): ``warm_start="features"`` (default) first trains the adapter on frozen pretrained
    features of the same (noisy) training split (:func:`vlmkit.vacsr.train_on_features`,
    ``warm_epochs`` epochs at ``warm_lr``, batch = the loop's local batch, the run's seed) and
    starts the joint run from it (``"none"``: a random adapter); ``text_lr_frac`` /
    ``image_lr_frac`` (0.1 / 0.01, the paper's) set the towers' lr to that fraction of
    ``vacsr["lr"]`` (times ``lr_mult_*``); ``None`` runs the towers at ``lr`` instead (the
    previous behaviour). Loss: Eq. 13 only. A randomly initialised adapter trained jointly at
    the encoders' lr does not train at the workbook's budget (2 epochs: R@1 0.09 %, chance
    0.1 %, the encoders collapse); the measured numbers of this recipe are in bench/README.md
    (VACSR).

    Optimisation: AdamW, linear warm-up over ``warmup_frac`` of the steps then cosine decay to
    0, gradient-norm clipping (``grad_clip=0`` switches it off). ``freeze`` freezes a whole
    tower, ``freeze_prefixes`` any parameters whose names start with one of the prefixes
    (e.g. ``"visual.transformer.resblocks.0."``: a partly frozen tower); ``lr_mult_image`` /
    ``lr_mult_text`` scale the lr of each tower (0 also freezes it). ``eval_mode=True`` keeps
    the model in eval mode while training (no dropout; the authors' m²-Mix runs).

    The defaults are the ``workbook`` :class:`Recipe` (:data:`RECIPES`; notebook 02, the ledger and
    ``vlmkit run --quick`` take theirs from the same registry). Defaults that depart from the m²-Mix
    authors' recipe (``RECIPES["authors"]``: ``changdaeoh/multimodal-mixup``, ``main.py``; docs/design.md),
    and why:

    * ``lr=2e-4`` (authors 1e-5 or 7e-6): the small stand-in barely moves at 1e-5 in the
      workbook's 156 steps (bench/README.md, Fine-tuning: 1e-5 → RSUM 50.3, 1e-4 → 120.2); on the
      shipped stand-in (τ = 0.02) 2e-4 gains more than 1e-4 in both directions (seed 0: contrastive
      +6.6 / +8.9 R@1 against +5.7 / +7.5, sigmoid +20.3 / +7.4 against +13.8 / +5.5; "The
      premise"). Pass 1e-5 for a real CLIP.
    * ``epochs=2`` (authors 9): the CPU budget of the default workbook (≤ 10 min on 2 cores); with
      every caption an epoch already holds five times the authors' pairs.
    * ``weight_decay=0.1`` (authors 0.2 or 0.01) **in groups**: decay only on weight
      matrices (``ndim ≥ 2``, not embeddings); biases, LayerNorm gains, embeddings and the
      logit scale/bias get none (open_clip's and CLIP's convention). The authors use one AdamW
      group with decay on every parameter.
    * ``grad_clip=1.0`` (authors: no clipping): guards the higher lr and fp16 AMP against
      rare exploding steps; ``grad_clip=0`` reproduces the authors.
    * ``captions_per_image=None`` (authors 1): every caption is a training pair. The embedded
      data's captions are ordered by specificity (the first is always the full description,
      unlike COCO's first annotator), so the first caption alone would train one caption style
      out of five; pass 1 for the authors' epoch.
    * ``train_images=2000`` (authors 113,287 COCO Karpathy-train images): the CPU budget of the
      default workbook; the embedded data's train split is generated to any size.
    * ``val_images=200`` (authors 5,000): validation only picks the best epoch, and 200 images
      rank the epochs as well at a fraction of the cost.
    * ``amp="auto"`` (authors: fp16 weights, fp32 update): bf16/fp16 autocast on CUDA only;
      CPU runs in fp32.
    * Same as the authors: AdamW, batch 128, 10 % linear warm-up then cosine to 0
      (:func:`vlmkit.schedule.warmup_cosine`), the model in eval mode while training
      (``eval_mode=True``: no dropout; the bundled configs have none, so both modes train the
      same weights, tested), τ fixed at the model's own learned value (``temperature=None``;
      the authors' 0.01 is CLIP ViT-B/32's learned τ; the learnable scale is unused unless
      ``learnable_scale=True``), clean training data (``noise_ratio=0``; the VACSR noise
      experiments pass ``Recipe.noise_ratio_vacsr``), the last partial batch dropped.
    """

    method: str = "contrastive"
    model: str | None = None  # None: the pretrained directory's own config (else vlmkit-tiny)
    pretrained: str | None = "stand-in"  # the shipped stand-in CLIP; None = random weights
    dataset: str = "shapes"
    val_dataset: str | None = None
    train_images: int = DEFAULT_RECIPE.train_images
    val_images: int = DEFAULT_RECIPE.val_images
    data_seed: int = 0
    noise_ratio: float = DEFAULT_RECIPE.noise_ratio
    captions_per_image: int | None = DEFAULT_RECIPE.captions_per_image
    epochs: int = DEFAULT_RECIPE.epochs
    batch_size: int = DEFAULT_RECIPE.batch_size
    lr: float = DEFAULT_RECIPE.lr
    weight_decay: float = DEFAULT_RECIPE.weight_decay
    warmup_frac: float = DEFAULT_RECIPE.warmup_frac
    grad_clip: float = DEFAULT_RECIPE.grad_clip
    freeze: str | None = None
    freeze_prefixes: tuple[str, ...] = ()
    lr_mult_image: float = 1.0
    lr_mult_text: float = 1.0
    eval_mode: bool = DEFAULT_RECIPE.eval_mode
    amp: str = "auto"
    grad_checkpointing: bool = False
    learnable_scale: bool = False
    temperature: float | None = DEFAULT_RECIPE.temperature
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
        t = self.temperature
        if t is not None and not (isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0
                                  and math.isfinite(t)):
            bad("temperature", "None (the model's own learned τ) or a finite number > 0")
        if not 0 <= self.warmup_frac < 1:
            bad("warmup_frac", "a fraction in [0, 1)")
        if not 0 <= self.noise_ratio <= 1:
            bad("noise_ratio", "a fraction in [0, 1]")
        cpi = self.captions_per_image
        if cpi is not None and (not isinstance(cpi, int) or isinstance(cpi, bool) or cpi < 1):
            bad("captions_per_image", "None (every caption) or an integer ≥ 1 (the first k captions of each image)")
        if self.freeze not in (None, "image", "text"):
            bad("freeze", "None, 'image' or 'text'")
        if self.amp not in AMP_CHOICES:
            bad("amp", f"one of {AMP_CHOICES} (or a bool)")
        if not isinstance(self.dataset, str) or not self.dataset:
            bad("dataset", "'shapes' or a vlmkit.data.load_dataset spec string")
        spec = parse_spec(self.dataset)  # the one spec grammar (vlmkit.data.spec); raises naming the spec
        if spec.embedded:
            spec.embedded_preset("TrainConfig.dataset")  # the loop draws the train and val splits itself
        frozen = {"image": self.freeze == "image" or self.lr_mult_image == 0,
                  "text": self.freeze == "text" or self.lr_mult_text == 0}
        method = get_method(self.method)
        if all(frozen.values()) and method.needs_towers:
            raise VlmkitError("TrainConfig: both towers are frozen (freeze / lr_mult_* = 0); nothing would be trained")
        method.validate(self)  # the method's own fields: loss_overrides, vacsr

    def vacsr_config(self, dim: int):
        """The adapter's :class:`~vlmkit.vacsr.VACSRConfig` (``dim`` = the model's embedding size)."""
        from ..vacsr import VACSRConfig

        allowed = {f.name for f in fields(VACSRConfig)}
        kw = {k: v for k, v in self.vacsr.items() if k not in VACSR_LOOP_KEYS}
        unknown = sorted(set(kw) - allowed)
        if unknown:
            raise VlmkitError(f"TrainConfig.vacsr: unknown key {unknown[0]!r}; "
                              f"expected VACSRConfig fields or {sorted(VACSR_LOOP_KEYS)}")
        if self.vacsr.get("preset", VACSR_LOOP_KEYS["preset"]) == "paper":
            return VACSRConfig.paper_sized(dim, **kw)
        return VACSRConfig(**{"dim": dim, **kw})

    def vacsr_option(self, key: str) -> Any:
        """A loop key of ``vacsr`` (numbers as float), its default when absent."""
        v = self.vacsr.get(key, VACSR_LOOP_KEYS[key])
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v

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
