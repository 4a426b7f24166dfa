"""Embedded classification data for the generalisation claims (ledger claims 13 and 14).

Each image shows **one** object of the embedded generator (:mod:`vlmkit.data.shapes`); its class
is the object's colour × shape (``"red circle"``), its prompt ``"a photo of a red circle."``. Size
(small / large) and position (left / middle / right) are drawn per image and are nuisances. With the
default grid of 8 shapes × 8 colours there are 64 classes; ``label = shape · n_colours + colour``.

**Two domains** (:data:`DOMAINS`), rendered by the same generator:

* ``source`` — the coco preset's look: one of the backgrounds white / dark / striped / checkered,
  pixel noise σ = 6, per-object colour jitter ±18, no colour cast;
* ``shifted`` — the image statistics change, the classes do not: one of the backgrounds gradient /
  tinted / speckled (never drawn in the source domain), a per-image colour cast of ±25 per
  channel, object colours faded 40 % towards grey, a Gaussian blur of radius 1.2 px and pixel
  noise σ = 14 (a washed-out, blurred style; object colour jitter unchanged). The backgrounds and
  cast alone are the web preset's, which the stand-in CLIP was pretrained on, and made the test
  set *easier* for it than the source (zero-shot 52.3 % vs 43.0 %); with the fade and the blur it
  is harder (zero-shot below the source), as ImageNet's variants are for CLIP (m²-Mix Tab. 4-5).

A split's *scenes* (class, size, position of each image) come from a stream seeded by
``(seed, split, class)`` alone, so the ``source`` and ``shifted`` test sets show the **same scenes**
rendered two ways (a paired shift: only the rendering differs) and a class subset holds exactly
the images of those classes in the full set. Rendering (background, jitter, noise) has its own
stream per domain. Splits ``train`` / ``val`` / ``test`` are independent draws.

**Base / novel split** (:func:`base_novel_split`): the classes in half, by a seeded permutation
(seed 0 by default); the CoCoOp protocol trains on base classes and tests on both halves.

data/README.md has the census of both domains (:func:`classification_census`).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from ..utils import VlmkitError
from .base import ArrayImages
from .folder import ClassificationDataset
from .shapes import ALL_BACKGROUNDS, COLOURS, MAX_OBJECTS, POSITIONS, SHAPES, SIZES, ShapesConfig, render_scene

DOMAINS = ("source", "shifted")
TEMPLATES = ("a photo of a {c}.",)
SPLITS = {"train": 53, "val": 59, "test": 61}
#: background indices (into :data:`vlmkit.data.shapes.ALL_BACKGROUNDS`) of each domain
DOMAIN_BACKGROUNDS = {"source": (0, 1, 2, 3), "shifted": (4, 5, 6)}
DOMAIN_CONFIGS = {
    "source": ShapesConfig(n_shapes=len(SHAPES), n_colours=len(COLOURS), backgrounds=True, noise_std=6.0,
                           colour_jitter=18, colour_cast=0),
    "shifted": ShapesConfig(n_shapes=len(SHAPES), n_colours=len(COLOURS), backgrounds=True, noise_std=14.0,
                            colour_jitter=18, colour_cast=25, fade=0.4, blur=1.2),
}
CLASS_SUBSETS = ("all", "base", "novel")


def _check_grid(n_shapes: int, n_colours: int) -> None:
    for name, n, top in (("n_shapes", n_shapes, len(SHAPES)), ("n_colours", n_colours, len(COLOURS))):
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or not 1 <= n <= top:
            raise VlmkitError(f"{name}={n!r}: expected an integer in 1..{top}")
    if n_shapes * n_colours < 2:
        raise VlmkitError(f"n_shapes × n_colours = {n_shapes * n_colours}: expected at least 2 classes")


def class_names(n_shapes: int = 8, n_colours: int = 8) -> list[str]:
    """``"<colour> <shape>"`` of every class, ``label = shape · n_colours + colour``."""
    _check_grid(n_shapes, n_colours)
    return [f"{COLOURS[c]} {SHAPES[s]}" for s in range(n_shapes) for c in range(n_colours)]


def base_novel_split(n_classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(base, novel) class indices, each sorted: a seeded permutation's first ⌈C/2⌉ are base."""
    if not isinstance(n_classes, (int, np.integer)) or isinstance(n_classes, bool) or n_classes < 2:
        raise VlmkitError(f"n_classes={n_classes!r}: a base/novel split needs an integer ≥ 2")
    perm = np.random.default_rng([int(seed), 97]).permutation(int(n_classes))
    k = (int(n_classes) + 1) // 2
    return np.sort(perm[:k]), np.sort(perm[k:])


def _classes(classes: str | Sequence[int] | None, n: int, split_seed: int) -> np.ndarray:
    if classes is None or (isinstance(classes, str) and classes == "all"):
        return np.arange(n)
    if isinstance(classes, str):
        if classes not in CLASS_SUBSETS:
            raise VlmkitError(f"classes={classes!r}: expected one of {CLASS_SUBSETS} or a list of class indices")
        base, novel = base_novel_split(n, split_seed)
        return base if classes == "base" else novel
    idx = np.asarray(list(classes))
    if (idx.size == 0 or idx.dtype.kind not in "iu" or idx.min() < 0 or idx.max() >= n
            or len(set(idx.tolist())) != idx.size):
        raise VlmkitError(f"classes={list(classes)!r}: expected distinct class indices in [0, {n})")
    return np.sort(idx)


def make_shape_classes(split: str = "test", domain: str = "source", per_class: int = 16,
                       classes: str | Sequence[int] | None = "all", n_shapes: int = 8, n_colours: int = 8,
                       seed: int = 0, split_seed: int = 0, image_size: int = 64) -> ClassificationDataset:
    """``per_class`` images of each class in ``classes`` (``"all"``, ``"base"``, ``"novel"`` of
    :func:`base_novel_split` with ``split_seed``, or indices), rendered in ``domain``.

    Deterministic in (``split``, ``seed``): the k-th image of class c is the same scene in every
    domain and in every class subset (module docstring). Labels index the full class list
    (``classnames`` = :func:`class_names`), images are ordered by class."""
    if split not in SPLITS:
        raise VlmkitError(f"split={split!r}: expected one of {list(SPLITS)}")
    if domain not in DOMAINS:
        raise VlmkitError(f"domain={domain!r}: expected one of {DOMAINS}")
    if not isinstance(per_class, (int, np.integer)) or isinstance(per_class, bool) or per_class < 1:
        raise VlmkitError(f"per_class={per_class!r}: expected an integer ≥ 1 (images per class; k for k-shot)")
    names = class_names(n_shapes, n_colours)
    cls = _classes(classes, len(names), split_seed)
    cfg = dataclasses.replace(DOMAIN_CONFIGS[domain], image_size=image_size)
    bgs = DOMAIN_BACKGROUNDS[domain]
    dom = DOMAINS.index(domain)
    images, labels, ids = [], [], []
    for c in cls:
        s, col = divmod(int(c), n_colours)
        scene_rng = np.random.default_rng([int(seed), SPLITS[split], int(c)])
        render_rng = np.random.default_rng([int(seed), SPLITS[split], int(c), 1 + dom])
        for k in range(per_class):
            objs = np.full((MAX_OBJECTS, 4), -1, dtype=np.int8)
            objs[0] = (s, col, scene_rng.integers(len(SIZES)), scene_rng.integers(len(POSITIONS)))
            bg = bgs[int(render_rng.integers(len(bgs)))]
            images.append(render_scene(objs, render_rng, cfg, bg))
            labels.append(int(c))
            ids.append(f"{split}-s{seed}-c{int(c)}-{k}")
    if classes is None or isinstance(classes, str):
        tag = (classes or "all") + ("" if classes in (None, "all") else f"{split_seed}")
    else:
        tag = "c" + ".".join(map(str, cls.tolist()))
    return ClassificationDataset(
        name=(f"shape-classes-{domain}-{split}-k{per_class}-{tag}-{n_shapes}x{n_colours}-s{seed}"
              + ("" if image_size == 64 else f"-px{image_size}")),
        images=ArrayImages(np.stack(images)), labels=np.asarray(labels, dtype=np.int64), classnames=names,
        templates=TEMPLATES, image_ids=ids)


def _int(value, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise VlmkitError(f"shape-classes spec: {name}={value!r} is not an integer") from None


def load_shape_classes(domain: str = "source", split: str = "train", per_class: str | int = 16,
                       classes: str = "all", grid: str = "8x8", seed: str | int = 0) -> ClassificationDataset:
    """:func:`make_shape_classes` from the parts of a dataset spec
    ``"shape-classes[:DOMAIN[:SPLIT[:PER_CLASS[:CLASSES[:GRID[:SEED]]]]]]"`` (e.g.
    ``"shape-classes:source:train:16:base:8x8:1"``: 16-shot base classes of the 8 × 8 grid, seed
    1), so that fine-tuning (:class:`vlmkit.train.TrainConfig` ``dataset``) can read it."""
    try:
        n_shapes, n_colours = (int(x) for x in str(grid).lower().split("x"))
    except ValueError:
        raise VlmkitError(f"shape-classes spec: grid={grid!r}, expected SHAPESxCOLOURS such as '8x8'") from None
    return make_shape_classes(split=split, domain=domain, per_class=_int(per_class, "per_class"), classes=classes,
                              n_shapes=n_shapes, n_colours=n_colours, seed=_int(seed, "seed"))


def shape_classes_spec(domain: str, split: str, per_class: int, classes: str = "all", grid: tuple[int, int] = (8, 8),
                       seed: int = 0) -> str:
    """The spec string :func:`load_shape_classes` reads back."""
    return f"shape-classes:{domain}:{split}:{per_class}:{classes}:{grid[0]}x{grid[1]}:{seed}"


def classification_census(ds: ClassificationDataset) -> dict[str, float]:
    """What a split looks like: images, classes, images per class and image statistics (pixel mean
    and std, colourfulness, the mean of the 3-pixel border — mostly background — and how far each
    image's channel means sit from its grey level, which the colour cast raises)."""
    arr = ds.images.array.astype(np.float32)
    counts = ds.class_counts()
    present = counts[counts > 0]
    return {"images": float(len(arr)), "classes": float(len(present)), "images per class": float(present.mean()),
            "pixel mean": float(arr.mean()), "pixel std": float(arr.std()),
            "colourfulness (mean channel spread)": float((arr.max(-1) - arr.min(-1)).mean()),
            "border pixel mean": float(np.concatenate([arr[:, :3].reshape(-1), arr[:, -3:].reshape(-1)]).mean()),
            "mean |channel mean − grey|": float(np.abs(arr.mean((1, 2)) - arr.mean((1, 2, 3))[:, None]).mean())}


def background_names(domain: str) -> list[str]:
    """The backgrounds a domain draws from."""
    if domain not in DOMAINS:
        raise VlmkitError(f"domain={domain!r}: expected one of {DOMAINS}")
    return [ALL_BACKGROUNDS[b] for b in DOMAIN_BACKGROUNDS[domain]]
