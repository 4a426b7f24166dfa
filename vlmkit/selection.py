"""Which data a workbook run evaluates and trains on (data selection, apart from the
run-directory I/O of :mod:`vlmkit.workbook`).

- The **test data** is a data spec (grammar: :mod:`vlmkit.data.spec`): ``"shapes"`` /
  ``"shapes:PRESET"`` names the embedded generator's test split (:func:`load_test_dataset`);
  anything else is a :func:`vlmkit.data.load_dataset` spec of real data.
- The **training data** is whatever fine-tuning trains on: :func:`training_data` is
  :func:`vlmkit.train.load_splits` of the method's :func:`train_config`, so notebook 02's
  VACSR on frozen features and every ``finetune`` call of the run see the same split (the
  embedded train split of the run's preset, or ``train_dataset`` less its held-out
  ``val_images``), with the same ``noise_ratio`` of captions permuted.

``vlmkit.workbook`` re-exports these names (``wb.training_data`` … in the notebooks).
"""

from __future__ import annotations

import os
import re
from typing import Any

from .data.spec import EMBEDDED, parse_spec
from .utils import VlmkitError


def is_embedded(dataset: str) -> bool:
    """Whether a data spec names the embedded generator: ``"shapes"`` or ``"shapes:PRESET"``
    (:func:`vlmkit.data.spec.parse_spec`; an invalid spec raises)."""
    return parse_spec(dataset).embedded


def embedded_spec(dataset: str, shapes_preset: str = "coco") -> str:
    """The run's data spec: ``"shapes"`` with a non-default ``shapes_preset`` becomes
    ``"shapes:PRESET"`` (checked); real-data specs are returned unchanged."""
    if dataset != EMBEDDED:
        return dataset
    try:
        parse_spec(f"{EMBEDDED}:{shapes_preset}").embedded_preset("shapes_preset")
    except VlmkitError as exc:
        raise in_notebook_terms(exc, "shapes_preset") from exc
    return EMBEDDED if shapes_preset == "coco" else f"{EMBEDDED}:{shapes_preset}"


def load_test_dataset(dataset: str, test_images: int, seed: int = 0, image_cache: str | os.PathLike | None = None):
    """The evaluation split: ``"shapes[:PRESET]"`` = the embedded test split of ``test_images``
    images (``seed``); anything else goes to :func:`vlmkit.data.load_dataset` (a spec string,
    e.g. ``karpathy:/path/dataset_coco.json:test``).  ``image_cache``: a directory that keeps
    the embedded split's rendered images between calls (``make_shapes(image_cache=...)``)."""
    from .data import load_dataset, make_shapes

    spec = parse_spec(dataset)
    if spec.embedded:
        preset = spec.embedded_preset("dataset", "test")
        try:
            return make_shapes("test", n_images=test_images, seed=seed, preset=preset, image_cache=image_cache)
        except VlmkitError as exc:
            if not str(exc).startswith("n_images"):
                raise
            raise in_notebook_terms(exc, "test_images") from exc
    return load_dataset(dataset, pairs=True)


NOTEBOOK_PARAMETERS = {"dataset": "train_dataset", "train_images": "train_images", "val_images": "val_images",
                       "noise_ratio": "noise_ratio", "epochs": "epochs", "batch_size": "batch_size", "lr": "lr",
                       "seed": "seed", "data_seed": "seed"}
"""``TrainConfig`` field → the notebook parameter (02_finetune) that sets it in a workbook run."""


def in_notebook_terms(exc: VlmkitError, name: str | None = None) -> VlmkitError:
    """``exc`` (raised by ``TrainConfig``, ``load_splits`` or the embedded generator) reworded
    for a workbook user: the notebook parameter to change is named (``-p val_images N``), not a
    field or argument that no notebook takes (``val_dataset``, ``n_images``).  ``name``: the
    notebook parameter behind the failing argument, when the caller knows it."""
    msg = str(exc)
    if name is not None:
        return VlmkitError(f"{msg} (set by the notebook parameter {name}: -p {name} VALUE)")
    if msg.endswith("; pass val_dataset"):
        msg = msg[: -len("; pass val_dataset")] + (": hold out fewer validation images with the notebook parameter "
                                                    "val_images (-p val_images N, N below that count)")
    else:
        field = re.match(r"TrainConfig\.(\w+)", msg)
        name = NOTEBOOK_PARAMETERS.get(field.group(1)) if field else None
        if name is None:
            return exc
        msg += f" (set by the notebook parameter {name}: -p {name} VALUE)"
    return VlmkitError(msg)


def train_config(spec: dict, method: str, *, train_dataset: str = "", **fields: Any):
    """The :class:`~vlmkit.train.TrainConfig` of one workbook method: the run's model and
    pretrained checkpoint (``spec`` = the run's ``data.json``), the embedded train/val splits of
    the run's preset (``seed`` also seeds the data) or ``train_dataset`` for real data, and the
    given fields.  Real test data without ``train_dataset`` raises (nothing to train on)."""
    from .train import TrainConfig

    if is_embedded(spec["dataset"]):
        data = {"dataset": spec["dataset"], "data_seed": int(fields.get("seed", 0))}
    elif train_dataset:
        data = {"dataset": train_dataset}
    else:
        raise VlmkitError(f"the run evaluates on {spec['dataset']!r}: "
                          "give train_dataset (a load_dataset spec) to fine-tune on real data")
    pretrained = spec.get("pretrained_dir") or None
    try:
        return TrainConfig(method=method, model=spec.get("model") or None, pretrained=pretrained, **data, **fields)
    except VlmkitError as exc:
        raise in_notebook_terms(exc) from exc


def training_data(spec: dict, train_dataset: str, train_images: int, noise_ratio: float, seed: int,
                  val_images: int | None = None):
    """The training split of the run — exactly what fine-tuning trains on
    (:func:`vlmkit.train.load_splits` of :func:`train_config`): the embedded train split of the
    run's preset, or ``train_dataset`` (a :func:`vlmkit.data.load_dataset` spec) less its
    held-out validation images; ``noise_ratio`` of its captions permuted
    (``caption_meta["moved"]`` / ``["noisy"]``)."""
    from .train import load_splits

    extra = {} if val_images is None else {"val_images": val_images}
    cfg = train_config(spec, "contrastive", train_dataset=train_dataset, train_images=train_images,
                       noise_ratio=noise_ratio, seed=seed, **extra)
    try:
        return load_splits(cfg)[0]
    except VlmkitError as exc:
        raise in_notebook_terms(exc) from exc

