"""Named fine-tuning recipes (:data:`RECIPES`): the one source of the sizes and switches that
:class:`vlmkit.train.TrainConfig` defaults to, notebook 02's parameters, ``vlmkit run --quick`` and
the claims ledger (:class:`vlmkit.claims.LedgerConfig`) use.  Pure data: importing it is cheap
(the CLI reads it without loading torch)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .utils import VlmkitError


@dataclass(frozen=True)
class Recipe:
    """A named fine-tuning recipe: the one place the workbook, the ledger, ``--quick`` and
    :class:`TrainConfig`'s defaults take their sizes from (:data:`RECIPES`).

    ``temperature=None``: the base InfoNCE runs at the model's own learned τ (1 / exp(logit_scale)
    of the pretrained checkpoint, held fixed), as the authors' τ = 0.01 is CLIP's learned τ.
    ``noise_ratio`` is the share of permuted training captions for the m²-Mix / fine-tuning
    comparisons (clean, as the authors); ``noise_ratio_vacsr`` that of the noisy-correspondence
    (VACSR) experiments (which of the two a method trains on: :meth:`vlmkit.train.Method.noise_ratio`).
    ``vacsr_epochs`` / ``vacsr_batch``: the VACSR adapter trained on frozen features
    (:func:`vlmkit.vacsr.train_on_features`; notebook 02's ``vacsr_epochs`` / ``vacsr_batch``, the
    ledger's ``vacsr_epochs`` / ``vacsr_batch_size``).
    """

    name: str
    lr: float
    epochs: int
    batch_size: int = 128
    weight_decay: float = 0.1
    warmup_frac: float = 0.1
    grad_clip: float = 1.0
    eval_mode: bool = True
    captions_per_image: int | None = None
    temperature: float | None = None
    train_images: int = 2000
    val_images: int = 200
    noise_ratio: float = 0.0
    noise_ratio_vacsr: float = 0.2
    vacsr_epochs: int = 3
    vacsr_batch: int = 128
    note: str = ""

    def notebook_params(self) -> dict[str, Any]:
        """Notebook 02's parameters for this recipe (papermill values: 0 stands for ``None``)."""
        return {"train_images": self.train_images, "val_images": self.val_images, "noise_ratio": self.noise_ratio,
                "vacsr_noise_ratio": self.noise_ratio_vacsr, "epochs": self.epochs, "batch_size": self.batch_size,
                "lr": self.lr,
                "captions_per_image": self.captions_per_image or 0, "temperature": self.temperature or 0.0,
                "vacsr_epochs": self.vacsr_epochs, "vacsr_batch": self.vacsr_batch}

    def train_fields(self) -> dict[str, Any]:
        """The :class:`TrainConfig` fields this recipe sets."""
        return {k: getattr(self, k) for k in ("lr", "epochs", "batch_size", "weight_decay", "warmup_frac", "grad_clip",
                                              "eval_mode", "captions_per_image", "temperature", "train_images",
                                              "val_images", "noise_ratio")}


#: The named recipes (see :class:`Recipe`).  ``authors``: the m²-Mix authors' runs on CLIP ViT-B/32
#: (``changdaeoh/multimodal-mixup`` ``main.py``, docs/design.md; their τ = 0.01 is CLIP's learned τ, so
#: ``temperature=None`` here).  ``workbook``: what notebook 02 and :class:`TrainConfig` default to,
#: measured on the shipped stand-in (bench/README.md, "The premise").  ``ledger``: the claims
#: ledger's runs (the workbook's, validated on 1,000 images).  ``quick``: ``vlmkit run --quick``'s
#: tiny sizes (CI; its numbers mean nothing).
RECIPES: dict[str, Recipe] = {
    "authors": Recipe("authors", lr=1e-5, epochs=9, weight_decay=0.2, grad_clip=0.0, captions_per_image=1,
                      train_images=113_287, val_images=5000, note="m²-Mix authors on COCO with CLIP ViT-B/32"),
    "workbook": Recipe("workbook", lr=2e-4, epochs=2, note="the default workbook on the shipped stand-in"),
    "ledger": Recipe("ledger", lr=2e-4, epochs=2, val_images=1000, vacsr_epochs=10, vacsr_batch=128,
                     note="the claims ledger (workbook recipe, 1,000 validation images)"),
    "quick": Recipe("quick", lr=1e-4, epochs=1, batch_size=32, train_images=120, val_images=40, vacsr_epochs=2,
                    note="vlmkit run --quick (CI sizes)"),
}
DEFAULT_RECIPE = RECIPES["workbook"]


def recipe(name: str) -> Recipe:
    """The :class:`Recipe` called ``name`` (one of :data:`RECIPES`)."""
    if name not in RECIPES:
        raise VlmkitError(f"recipe: unknown name {name!r}; expected one of {sorted(RECIPES)}")
    return RECIPES[name]
