"""The embedded default: a generated image–caption dataset with exact ground truth.

Each image shows 1–3 objects on a plain, slightly noisy background.  An object has a
**shape** (circle, square, triangle, star, cross), a **colour** (red, green, blue, yellow,
purple, orange), a **size** (small, large) and a **position** (left, middle, right —
at most one object per position).  The **count** is the number of objects.

Every caption is a conjunction of *atoms* (one attribute claim each), grouped into
object clauses, plus an optional count atom.  Five captions per image, one per
specificity level (``caption_meta["specificity"]``):

====  ==========================  ==================================================
spec  form                        example
====  ==========================  ==================================================
4     count + every object, full  "two shapes: a large red circle on the left and a
                                  small blue star on the right"
3     one object, full            "a large red circle on the left"
2     one object, colour + shape  "a red circle"
1     one object, one attribute   "a red shape" / "a circle"
0     count only                  "two shapes"
====  ==========================  ==================================================

**Truth.** A caption is *true* of an image when its count atom (if any) equals the
image's count and its object clauses can be assigned to *distinct* objects of the image
so that every attribute claim holds.  Captions are existential: "a red circle" is true
of any image with some red circle.  The graded **relevance** of a pair is the largest
fraction of the caption's atoms that any such assignment satisfies (1.0 iff true).

The "web-like" variant (:func:`make_web_captions`) gives each image noisy alt-text
style captions for pretraining: random wrappers, dropped attributes, an occasional wrong
word and a fraction of captions taken from other images.
"""

from __future__ import annotations

import itertools
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from ..utils import VlmkitError
from .base import ArrayImages, PairDataset, Truth

SHAPES = ("circle", "square", "triangle", "star", "cross")
COLOURS = ("red", "green", "blue", "yellow", "purple", "orange")
SIZES = ("small", "large")
POSITIONS = ("left", "middle", "right")
COUNT_WORDS = ("no", "one", "two", "three")
RGB = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 70, 220),
    "yellow": (235, 205, 30),
    "purple": (140, 50, 180),
    "orange": (245, 130, 20),
}
POSITION_PHRASE = {"left": "on the left", "middle": "in the middle", "right": "on the right"}
# Attribute columns of an object / clause: shape, colour, size, position (−1 = absent/unspecified).
ATTRS = ("shape", "colour", "size", "position")
MAX_OBJECTS = 3
SPLITS = {"pretrain": 11, "train": 23, "val": 37, "test": 41}
DEFAULT_SIZES = {"pretrain": 10_000, "train": 5_000, "val": 1_000, "test": 1_000}


@dataclass
class ShapesConfig:
    """How the embedded dataset is drawn.  Defaults: 64×64 images, 1–3 objects."""

    image_size: int = 64
    min_objects: int = 1
    max_objects: int = 3
    noise_std: float = 6.0  # per-pixel Gaussian noise on the background (0–255 scale)

    def __post_init__(self) -> None:
        if self.image_size < 32:
            raise VlmkitError(f"ShapesConfig.image_size must be ≥ 32, got {self.image_size}")
        if not 1 <= self.min_objects <= self.max_objects <= MAX_OBJECTS:
            raise VlmkitError(f"ShapesConfig needs 1 ≤ min_objects ≤ max_objects ≤ {MAX_OBJECTS}, got {self.min_objects}, {self.max_objects}")


# --------------------------------------------------------------------------- scenes


def _rng(seed: int, split: str) -> np.random.Generator:
    if split not in SPLITS:
        raise VlmkitError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    return np.random.default_rng([seed, SPLITS[split]])


def sample_scenes(n: int, rng: np.random.Generator, cfg: ShapesConfig) -> np.ndarray:
    """Object attributes (n, MAX_OBJECTS, 4) int8, rows sorted by position, −1 padded."""
    objs = np.full((n, MAX_OBJECTS, len(ATTRS)), -1, dtype=np.int8)
    counts = rng.integers(cfg.min_objects, cfg.max_objects + 1, size=n)
    for i, k in enumerate(counts):
        positions = np.sort(rng.choice(len(POSITIONS), size=k, replace=False))
        objs[i, :k, 0] = rng.integers(len(SHAPES), size=k)
        objs[i, :k, 1] = rng.integers(len(COLOURS), size=k)
        objs[i, :k, 2] = rng.integers(len(SIZES), size=k)
        objs[i, :k, 3] = positions
    return objs


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    if shape == "square":
        pts = [(np.cos(a), np.sin(a)) for a in np.pi / 4 + np.arange(4) * np.pi / 2]
        r = r * 1.0
    elif shape == "triangle":
        pts = [(np.cos(a), np.sin(a)) for a in -np.pi / 2 + np.arange(3) * 2 * np.pi / 3]
        r = r * 1.15
    elif shape == "star":
        pts = []
        for j in range(10):
            a = -np.pi / 2 + j * np.pi / 5
            rad = 1.0 if j % 2 == 0 else 0.45
            pts.append((rad * np.cos(a), rad * np.sin(a)))
        r = r * 1.2
    elif shape == "cross":
        w = 0.36
        pts = [(-w, -1), (w, -1), (w, -w), (1, -w), (1, w), (w, w), (w, 1), (-w, 1), (-w, w), (-1, w), (-1, -w), (-w, -w)]
    else:
        raise ValueError(shape)
    ca, sa = np.cos(angle), np.sin(angle)
    return [(cx + r * (x * ca - y * sa), cy + r * (x * sa + y * ca)) for x, y in pts]


def render_scene(objs: np.ndarray, rng: np.random.Generator, cfg: ShapesConfig) -> np.ndarray:
    """Draw one scene (MAX_OBJECTS, 4) into a uint8 (S, S, 3) array.

    Drawn at 2× and downsampled for anti-aliasing; background grey level, small jitter of
    position, rotation and hue, and pixel noise come from ``rng``.
    """
    s = cfg.image_size
    big = 2 * s
    bg = int(rng.integers(200, 246))
    img = Image.new("RGB", (big, big), (bg, bg, bg))
    draw = ImageDraw.Draw(img)
    slot_w = big / len(POSITIONS)
    for shape_i, colour_i, size_i, pos_i in objs:
        if shape_i < 0:
            continue
        r = big * (0.085 if size_i == 0 else 0.15) * float(rng.uniform(0.92, 1.08))
        cx = slot_w * (pos_i + 0.5) + float(rng.uniform(-0.08, 0.08)) * slot_w
        cy = big * 0.5 + float(rng.uniform(-0.22, 0.22)) * big
        rgb = tuple(int(np.clip(c + rng.integers(-18, 19), 0, 255)) for c in RGB[COLOURS[colour_i]])
        shape = SHAPES[shape_i]
        if shape == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=rgb)
        else:
            angle = float(rng.uniform(-0.25, 0.25)) if shape != "star" else float(rng.uniform(-0.2, 0.2))
            draw.polygon(_polygon(shape, cx, cy, r, angle), fill=rgb)
    arr = np.asarray(img.resize((s, s), Image.BILINEAR), dtype=np.float32)
    if cfg.noise_std > 0:
        arr += rng.normal(0.0, cfg.noise_std, size=arr.shape).astype(np.float32)
    return np.clip(arr, 0, 255).round().astype(np.uint8)


# --------------------------------------------------------------------------- captions


@dataclass
class CaptionSpec:
    """Structured content of captions: clause attributes and count, for computing truth.

    ``clauses``: (M, MAX_OBJECTS, 4) int8, −1 = unspecified attribute; a clause with all
    attributes −1 is absent.  ``count``: (M,) int8, −1 = no count claim.
    """

    clauses: np.ndarray
    count: np.ndarray

    def take(self, idx: np.ndarray) -> "CaptionSpec":
        return CaptionSpec(self.clauses[idx], self.count[idx])

    @property
    def n_atoms(self) -> np.ndarray:
        return (self.clauses >= 0).sum(axis=(1, 2)) + (self.count >= 0)


def describe_object(shape: int, colour: int, size: int, position: int) -> str:
    """Words for one clause; any attribute may be −1 (left out)."""
    words = []
    if size >= 0:
        words.append(SIZES[size])
    if colour >= 0:
        words.append(COLOURS[colour])
    words.append(SHAPES[shape] if shape >= 0 else "shape")
    if position >= 0:
        words.append(POSITION_PHRASE[POSITIONS[position]])
    article = "an" if words[0][0] in "aeiou" else "a"
    return " ".join([article, *words])


def count_phrase(k: int) -> str:
    return f"{COUNT_WORDS[k]} shape" + ("" if k == 1 else "s")


def caption_text(clauses: np.ndarray, count: int) -> str:
    parts = [describe_object(*map(int, c)) for c in clauses if (c >= 0).any()]
    if count >= 0 and not parts:
        return count_phrase(count)
    body = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"{count_phrase(count)}: {body}" if count >= 0 else body


def exact_captions(objs: np.ndarray, rng: np.random.Generator) -> tuple[list[str], CaptionSpec, np.ndarray]:
    """Five captions per image, specificity 4 → 0 (see module docstring)."""
    n = len(objs)
    clauses = np.full((n, 5, MAX_OBJECTS, len(ATTRS)), -1, dtype=np.int8)
    count = np.full((n, 5), -1, dtype=np.int8)
    for i, o in enumerate(objs):
        present = np.flatnonzero(o[:, 0] >= 0)
        k = len(present)
        clauses[i, 0, :k] = o[present]  # spec 4: everything
        count[i, 0] = k
        j = int(rng.choice(present))
        clauses[i, 1, 0] = o[j]  # spec 3: one object, full
        clauses[i, 2, 0, :2] = o[rng.choice(present), :2]  # spec 2: colour + shape
        j = int(rng.choice(present))
        attr = int(rng.integers(2))  # spec 1: shape or colour
        clauses[i, 3, 0, attr] = o[j, attr]
        count[i, 4] = k  # spec 0: count only
    spec = CaptionSpec(clauses.reshape(n * 5, MAX_OBJECTS, len(ATTRS)), count.reshape(n * 5))
    texts = [caption_text(c, int(k)) for c, k in zip(spec.clauses, spec.count)]
    specificity = np.tile(np.array([4, 3, 2, 1, 0], dtype=np.int8), n)
    return texts, spec, specificity


WEB_WRAPPERS = (
    "{}",
    "a photo of {}",
    "{} . stock image",
    "clipart: {}",
    "picture with {}",
    "{} on a grey background",
    "illustration of {}",
    "{}, high resolution",
)


def make_web_captions(objs: np.ndarray, rng: np.random.Generator, per_image: int = 1, p_drop: float = 0.35, p_wrong: float = 0.05, p_other: float = 0.1) -> tuple[list[str], CaptionSpec]:
    """Noisy alt-text style captions ("web-like") for pretraining.

    Each caption describes 1..all objects with each attribute dropped with ``p_drop``,
    one attribute replaced by a wrong value with ``p_wrong``, and with ``p_other`` it is
    about another image altogether.  Its :class:`CaptionSpec` is what it *says*, so truth
    stays exact.
    """
    n = len(objs)
    m = n * per_image
    clauses = np.full((m, MAX_OBJECTS, len(ATTRS)), -1, dtype=np.int8)
    count = np.full(m, -1, dtype=np.int8)
    texts = []
    sizes = (len(SHAPES), len(COLOURS), len(SIZES), len(POSITIONS))
    for row in range(m):
        i = row // per_image
        if rng.random() < p_other:
            i = int(rng.integers(n))
        o = objs[i]
        present = np.flatnonzero(o[:, 0] >= 0)
        k = int(rng.integers(1, len(present) + 1))
        chosen = np.sort(rng.choice(present, size=k, replace=False))
        c = o[chosen].copy()
        drop = rng.random(c.shape) < p_drop
        drop[:, 0] &= rng.random(k) < 0.5  # keep the noun more often
        drop[drop.all(axis=1), 0] = False  # every clause keeps at least its noun
        c[drop] = -1
        if rng.random() < p_wrong:
            a, b = int(rng.integers(k)), int(rng.integers(len(ATTRS)))
            c[a, b] = int(rng.integers(sizes[b]))
        clauses[row, :k] = c
        if rng.random() < 0.3:
            count[row] = len(present)
        wrapper = WEB_WRAPPERS[int(rng.integers(len(WEB_WRAPPERS)))]
        texts.append(wrapper.format(caption_text(clauses[row], int(count[row]))))
    return texts, CaptionSpec(clauses, count)


# --------------------------------------------------------------------------- truth


_PERMS = np.array(list(itertools.permutations(range(MAX_OBJECTS))), dtype=np.int64)


def match_atoms(objs: np.ndarray, spec: CaptionSpec) -> np.ndarray:
    """Best number of satisfied atoms for every (image, caption) pair: int16 (N, M).

    Clauses are assigned to distinct objects (all 3! assignments of clause slots to
    object slots are tried; an empty object slot satisfies nothing); the count atom holds
    when it equals the image's number of objects.
    """
    present = objs[:, :, 0] >= 0  # (N, 3)
    cl = spec.clauses  # (M, 3, 4)
    specified = cl >= 0
    # hits[c][o]: atoms of clause c satisfied by object o, (N, M) each.
    hits = [
        [
            (((objs[:, o, None, :] == cl[None, :, c, :]) & specified[None, :, c, :]).sum(-1, dtype=np.int16) * present[:, o, None])
            for o in range(MAX_OBJECTS)
        ]
        for c in range(MAX_OBJECTS)
    ]
    best = np.zeros((len(objs), len(cl)), dtype=np.int16)
    for perm in _PERMS:
        total = hits[0][perm[0]] + hits[1][perm[1]] + hits[2][perm[2]]
        np.maximum(best, total, out=best)
    n_obj = present.sum(axis=1)
    count_ok = (spec.count[None, :] >= 0) & (spec.count[None, :] == n_obj[:, None])
    return best + count_ok


class ShapesTruth(Truth):
    """Exact truth of the embedded data, computed on demand from scene and caption specs."""

    exact = True

    def __init__(self, objs: np.ndarray, spec: CaptionSpec):
        self.objs = objs
        self.spec = spec
        self._atoms = spec.n_atoms

    def relevance(self, img_idx: np.ndarray, cap_idx: np.ndarray) -> np.ndarray:
        out = np.empty((len(img_idx), len(cap_idx)), dtype=np.float32)
        sub = self.spec.take(cap_idx)
        atoms = np.maximum(self._atoms[cap_idx], 1).astype(np.float32)
        for start in range(0, len(img_idx), 256):  # bounded memory
            rows = img_idx[start : start + 256]
            out[start : start + len(rows)] = match_atoms(self.objs[rows], sub) / atoms
        return out

    def positives(self, img_idx: np.ndarray, cap_idx: np.ndarray) -> np.ndarray:
        return self.relevance(img_idx, cap_idx) >= 1.0

    def subset(self, img_idx: np.ndarray, cap_idx: np.ndarray) -> "ShapesTruth":
        return ShapesTruth(self.objs[img_idx], self.spec.take(cap_idx))

    def fingerprint(self) -> str:
        from ..utils import fingerprint

        return fingerprint(self.objs, self.spec.clauses, self.spec.count)


# --------------------------------------------------------------------------- factory


def make_shapes(
    split: str = "test",
    n_images: int | None = None,
    seed: int = 0,
    captions: str = "exact",
    config: ShapesConfig | None = None,
    web_per_image: int = 1,
) -> PairDataset:
    """Generate a split of the embedded dataset, deterministically from ``seed``.

    Args:
        split: ``"pretrain"``, ``"train"``, ``"val"`` or ``"test"``; each split draws from
            its own stream, so splits are independent samples.
        n_images: images in the split (defaults: pretrain 10,000, train 5,000, val and
            test 1,000 — the test split mirrors COCO 1K: 1,000 images × 5,000 captions).
        seed: the master seed.
        captions: ``"exact"`` (five graded captions per image) or ``"web"`` (noisy
            alt-text, ``web_per_image`` per image; the default for ``split="pretrain"``
            is still ``"exact"`` unless asked).
    """
    cfg = config or ShapesConfig()
    rng = _rng(seed, split)  # validates the split name
    n = DEFAULT_SIZES[split] if n_images is None and split in DEFAULT_SIZES else n_images
    if n is None or n < 1:
        raise VlmkitError(f"n_images must be a positive integer, got {n_images!r}")
    objs = sample_scenes(n, rng, cfg)
    render_rng = np.random.default_rng([seed, SPLITS[split], 1])
    images = np.stack([render_scene(o, render_rng, cfg) for o in objs])
    cap_rng = np.random.default_rng([seed, SPLITS[split], 2])
    if captions == "exact":
        texts, spec, specificity = exact_captions(objs, cap_rng)
        per = 5
        meta = {"specificity": specificity}
    elif captions == "web":
        if web_per_image < 1:
            raise VlmkitError(f"web_per_image must be ≥ 1, got {web_per_image}")
        texts, spec = make_web_captions(objs, cap_rng, per_image=web_per_image)
        per = web_per_image
        meta = {"specificity": np.full(len(texts), -1, dtype=np.int8)}
    else:
        raise VlmkitError(f"captions must be 'exact' or 'web', got {captions!r}")
    meta["noisy"] = np.zeros(len(texts), dtype=bool)
    ds = PairDataset(
        name=f"shapes-{split}" + ("-web" if captions == "web" else "") + f"-s{seed}",
        images=ArrayImages(images),
        captions=texts,
        caption_image=np.repeat(np.arange(n), per),
        image_ids=[f"{split}-{seed}-{i:06d}" for i in range(n)],
        truth=ShapesTruth(objs, spec),
        caption_meta=meta,
        image_meta={"count": (objs[:, :, 0] >= 0).sum(axis=1).astype(np.int8)},
    )
    return ds


def scene_of(ds: PairDataset, i: int) -> list[dict]:
    """The objects of image ``i`` of an embedded dataset as readable dicts."""
    if not isinstance(ds.truth, ShapesTruth):
        raise VlmkitError(f"{ds.name} is not an embedded shapes dataset")
    out = []
    for o in ds.truth.objs[i]:
        if o[0] >= 0:
            out.append({"shape": SHAPES[o[0]], "colour": COLOURS[o[1]], "size": SIZES[o[2]], "position": POSITIONS[o[3]]})
    return out


def inject_noise(ds: PairDataset, ratio: float, seed: int = 0) -> PairDataset:
    """Noisy correspondence: permute a seeded ``ratio`` of captions among themselves.

    The chosen captions are shuffled by a random derangement of their positions, so each
    moves to another caption's slot (and, almost always, another image).  The one-to-one
    labels (``caption_image``) stay, the texts move: exactly the "mismatched pair" noise
    of the noisy-correspondence literature.  ``caption_meta["noisy"]`` marks the moved
    captions; extended truth follows the texts, so it stays exact.
    """
    if not 0.0 <= ratio <= 1.0:
        raise VlmkitError(f"noise ratio must be in [0, 1], got {ratio}")
    m = ds.num_captions
    k = int(round(ratio * m))
    rng = np.random.default_rng([seed, zlib.crc32(ds.name.encode()), 7])
    perm = np.arange(m)
    if k >= 2:
        chosen = np.sort(rng.choice(m, size=k, replace=False))
        shift = rng.permutation(k)
        # A derangement: rotate a random order by one, so no caption stays in place.
        order = chosen[shift]
        perm[order] = np.roll(order, 1)
    moved = perm != np.arange(m)
    all_img = np.arange(ds.num_images)
    meta = {key: np.asarray(v)[perm] for key, v in ds.caption_meta.items()}
    meta["noisy"] = moved | ds.caption_meta.get("noisy", np.zeros(m, bool))
    return PairDataset(
        name=f"{ds.name}-noise{ratio:g}",
        images=ds.images,
        captions=[ds.captions[j] for j in perm],
        caption_image=ds.caption_image.copy(),
        image_ids=list(ds.image_ids),
        truth=None if ds.truth is None else ds.truth.subset(all_img, perm),
        caption_meta=meta,
        image_meta=dict(ds.image_meta),
        skipped=list(ds.skipped),
    )
