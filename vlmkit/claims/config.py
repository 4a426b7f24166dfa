""":class:`LedgerConfig`: every size knob of the claims ledger in one place, with a ``quick()`` preset."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..recipes import RECIPES
from ..utils import VlmkitError

_LEDGER = RECIPES["ledger"]

#: frozen-feature VACSR variants (claims 3, 4, 5): VACSRConfig overrides (paper Tab. 6 ablations)
VACSR_VARIANTS: dict[str, dict[str, Any]] = {
    "K2": {},  # the paper's adapter (K = 2, both variance losses, sigmoid on σ²)
    "K1": {"n_components": 1},
    "K3": {"n_components": 3},
    "K4": {"n_components": 4},
    "no-pos": {"lambda_pos": 0.0},
    "no-neg": {"lambda_neg": 0.0},
    "no-sigmoid": {"sigmoid_var": False},
}
#: the "variational parts off" baseline on the same frozen features (claims 1 and 2, for reference):
#: :meth:`vlmkit.vacsr.VACSRConfig.plain_sigmoid`, the same MLP trained by binary cross-entropy
PLAIN = "plain"


def vacsr_config(variant: str, dim: int):
    """The :class:`~vlmkit.vacsr.VACSRConfig` of a ledger variant: ``VACSR_VARIANTS[variant]`` or
    :data:`PLAIN`."""
    from ..vacsr import VACSRConfig

    if variant == PLAIN:
        return VACSRConfig.plain_sigmoid(dim=dim)
    if variant not in VACSR_VARIANTS:
        raise VlmkitError(f"VACSR ledger variant {variant!r}: expected {PLAIN!r} or one of {list(VACSR_VARIANTS)}")
    return VACSRConfig(dim=dim, **VACSR_VARIANTS[variant])


@dataclass
class LedgerConfig:
    """Sizes of the ledger's experiments. The default is the ``ledger`` recipe
    (:data:`vlmkit.recipes.RECIPES`: the workbook's, validated on 1,000 images): the shipped stand-in
    CLIP, coco preset, 2,000 training images (all captions), its epochs, batch and lr, the model in
    eval mode at its own learned τ, best epoch by validation RSUM, 20 % noisy correspondence
    (``noise_high`` = 50 % for claim 2), tested on the 1,000 × 5,000 test split; VACSR on frozen
    stand-in features (claims 3–5) with the ``VACSR_VARIANTS`` on the coco preset and ``K2`` on
    the stress preset (claim 4). ``noise_reference``: frozen-feature VACSR (``K2``) and the same MLP
    with its variational parts off (``plain``) also trained at ``noise_high`` (and ``plain`` at
    ``noise``) — the like-for-like noise comparison shown beside claims 1 and 2.

    ``ft_methods`` run at ``noise``; ``noisy_methods`` also at ``noise_high``. ``trajectory``:
    evaluate the geometry and hardness after every epoch (claims 7, 9) for ``trajectory_methods``.
    """

    seeds: tuple[int, ...] = (0, 1, 2)
    model: str | None = None  # None: the pretrained directory's own config
    pretrained: str | None = "stand-in"
    preset: str = "coco"
    stress_preset: str | None = "stress"  # second preset for the false-negative claim (None: skip)
    train_images: int = _LEDGER.train_images
    val_images: int = _LEDGER.val_images
    test_images: int = 1000
    captions_per_image: int | None = _LEDGER.captions_per_image
    epochs: int = _LEDGER.epochs
    batch_size: int = _LEDGER.batch_size
    lr: float = _LEDGER.lr
    noise: float = _LEDGER.noise_ratio_vacsr  # every fine-tuning run of the ledger (its claims compare at one noise level)
    noise_high: float = 0.5
    ft_methods: tuple[str, ...] = ("contrastive", "sigmoid", "m2mix", "m2mix-linear", "vacsr-joint")
    noisy_methods: tuple[str, ...] = ("contrastive", "sigmoid", "vacsr-joint")
    trajectory: bool = True
    trajectory_methods: tuple[str, ...] = ("contrastive", "sigmoid", "m2mix", "m2mix-linear")
    vacsr_train_images: int = 2000
    vacsr_epochs: int = 5
    vacsr_batch_size: int = 256
    vacsr_lr: float = 1e-3
    vacsr_variants: tuple[str, ...] = tuple(VACSR_VARIANTS)
    noise_reference: bool = True
    fig3_boot: int = 200  # bootstrap resamples for the Fig. 3 interval (0: none)
    hardness_lambda: float = 0.5  # λ of the mixed negatives slerp(v_j, t_j; λ) measured for claim 9
    hardness_pairs: int = 500  # anchors (first caption per image) for the hardness measure
    arithmetic_lambda: float = 1.0  # strength of the text delta (SIMAT's λ)
    arithmetic_queries: int = 2000  # at most this many edit queries (seeded sample)
    device: str = "auto"
    quick_mode: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.seeds = tuple(int(s) for s in self.seeds)
        for name in ("ft_methods", "noisy_methods", "vacsr_variants", "trajectory_methods"):
            setattr(self, name, tuple(getattr(self, name)))
        if not self.seeds:
            raise VlmkitError("LedgerConfig.seeds: expected at least one seed (3 or more for a verdict)")
        unknown = [v for v in self.vacsr_variants if v not in VACSR_VARIANTS]
        if unknown or "K2" not in self.vacsr_variants:
            raise VlmkitError(f"LedgerConfig.vacsr_variants={self.vacsr_variants}: expected names from {list(VACSR_VARIANTS)}, K2 included")
        from ..train import METHODS

        bad = [m for m in (*self.ft_methods, *self.noisy_methods) if m not in METHODS]
        if bad:
            raise VlmkitError(f"LedgerConfig.ft_methods/noisy_methods: unknown method {bad[0]!r}; expected one of {METHODS}")
        for name in ("noise", "noise_high"):
            if not 0 <= getattr(self, name) <= 1:
                raise VlmkitError(f"LedgerConfig.{name}={getattr(self, name)}: expected a fraction in [0, 1]")

    @classmethod
    def quick(cls, **overrides: Any) -> "LedgerConfig":
        """Tiny sizes that run the same pipeline in seconds (the test suite): a random-weight
        ``vlmkit-tiny``, 32 training images with one caption each, 1 epoch, 2 seeds."""
        kw: dict[str, Any] = dict(seeds=(0, 1), model="vlmkit-tiny", pretrained=None, train_images=32, val_images=16,
                                  test_images=24, captions_per_image=1, epochs=1, batch_size=16, vacsr_train_images=32,
                                  vacsr_epochs=1, vacsr_batch_size=32, fig3_boot=0, hardness_pairs=24,
                                  arithmetic_queries=200, device="cpu", quick_mode=True)
        kw.update(overrides)
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def train_config(self, method: str, noise: float, seed: int):
        """The :class:`~vlmkit.train.TrainConfig` of one fine-tuning run."""
        from ..train import TrainConfig

        switches = {k: getattr(_LEDGER, k) for k in ("weight_decay", "warmup_frac", "grad_clip", "eval_mode", "temperature")}
        return TrainConfig(method=method, model=self.model, pretrained=self.pretrained, dataset=f"shapes:{self.preset}",
                           train_images=self.train_images, val_images=self.val_images, noise_ratio=noise,
                           captions_per_image=self.captions_per_image, epochs=self.epochs, batch_size=self.batch_size,
                           lr=self.lr, seed=seed, device=self.device, **switches)
