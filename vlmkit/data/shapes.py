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
import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..utils import VlmkitError
from .base import ArrayImages, PairDataset, Truth
from .noise import inject_noise  # noqa: F401 (re-exported: vlmkit.data.shapes.inject_noise, its former home)

SHAPES = ("circle", "square", "triangle", "star", "cross", "hexagon", "diamond", "ring")
COLOURS = ("red", "green", "blue", "yellow", "purple", "orange", "pink", "cyan")
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
    "pink": (250, 120, 190),
    "cyan": (40, 200, 215),
}
BACKGROUNDS = ("white", "dark", "striped", "checkered")
#: Backgrounds only the web domain draws (indices continue :data:`BACKGROUNDS`, so truth stays one index space).
WEB_BACKGROUNDS = ("gradient", "tinted", "speckled")
ALL_BACKGROUNDS = BACKGROUNDS + WEB_BACKGROUNDS
POSITION_PHRASE = {"left": "on the left", "middle": "in the middle", "right": "on the right"}
# Attribute columns of an object / clause: shape, colour, size, position (−1 = absent/unspecified).
ATTRS = ("shape", "colour", "size", "position")
MAX_OBJECTS = 3
SPLITS = {"pretrain": 11, "train": 23, "val": 37, "test": 41}
DEFAULT_SIZES = {"pretrain": 10_000, "train": 5_000, "val": 1_000, "test": 1_000}


@dataclass
class ShapesConfig:
    """How the embedded dataset is drawn (see :data:`PRESETS` for the two regimes)."""

    image_size: int = 64
    min_objects: int = 1
    max_objects: int = 3
    noise_std: float = 6.0  # per-pixel Gaussian noise on the background (0–255 scale)
    n_shapes: int = 5  # the first n of SHAPES are drawn
    n_colours: int = 6  # the first n of COLOURS are drawn
    backgrounds: bool = False  # draw one of BACKGROUNDS per image (an attribute captions can state)
    colour_jitter: int = 18  # ± per channel, per object
    colour_cast: int = 0  # ± per channel, one global shift per image (the web domain's image statistics)
    shape_weights: tuple[float, ...] | None = None  # frequency of each of the n_shapes (None: uniform)
    colour_weights: tuple[float, ...] | None = None  # frequency of each of the n_colours (None: uniform)
    background_weights: tuple[float, ...] | None = None  # over ALL_BACKGROUNDS (None: uniform over BACKGROUNDS)
    fade: float = 0.0  # object colours blended this fraction towards mid-grey (a washed-out style)
    blur: float = 0.0  # Gaussian blur radius in output pixels, before the colour cast and the noise

    def __post_init__(self) -> None:
        if not (0 <= self.fade < 1 and 0 <= self.blur <= 8):
            raise VlmkitError(f"ShapesConfig.fade={self.fade}, blur={self.blur}: expected 0 ≤ fade < 1 "
                              "and a blur radius in [0, 8] pixels")
        if self.image_size < 32:
            raise VlmkitError(f"ShapesConfig.image_size must be ≥ 32, got {self.image_size}")
        if not 1 <= self.min_objects <= self.max_objects <= MAX_OBJECTS:
            raise VlmkitError(f"ShapesConfig needs 1 ≤ min_objects ≤ max_objects ≤ {MAX_OBJECTS}, got "
                              f"{self.min_objects}, {self.max_objects}")
        if not 2 <= self.n_shapes <= len(SHAPES) or not 2 <= self.n_colours <= len(COLOURS):
            raise VlmkitError(f"ShapesConfig.n_shapes must be in 2..{len(SHAPES)} and n_colours in 2..{len(COLOURS)}, "
                              f"got {self.n_shapes}, {self.n_colours}")
        for name, n in (("shape_weights", self.n_shapes), ("colour_weights", self.n_colours),
                        ("background_weights", len(ALL_BACKGROUNDS))):
            w = getattr(self, name)
            if w is not None and (len(w) != n or min(w) < 0 or sum(w) <= 0):
                raise VlmkitError(f"ShapesConfig.{name} must be {n} non-negative weights with a positive sum, got {w}")


#: The regimes of the embedded data.  ``coco`` (the default): 2–3 objects drawn from 8 shapes ×
#: 8 colours on one of 4 backgrounds, five near-unique captions per image written from different
#: angles, as COCO annotators do.  ``stress``: 1–3 objects, 5 shapes × 6 colours, plain background,
#: captions from a full description down to "two shapes" — false negatives everywhere (for teaching).
PRESETS: dict[str, ShapesConfig] = {
    "coco": ShapesConfig(min_objects=2, max_objects=3, n_shapes=8, n_colours=8, backgrounds=True),
    "stress": ShapesConfig(),
    # The *web* domain the stand-in CLIP is pretrained on (as CLIP on web alt-text, away from COCO):
    # 1–3 objects, a long tail of shapes and colours, backgrounds mostly of kinds the coco preset never
    # draws (gradient, tinted, speckled; no striped or checkered), a colour cast per image, stronger
    # jitter and pixel noise.  Its captions are short alt-text (:func:`alt_text_captions`).
    "web": ShapesConfig(min_objects=1, max_objects=3, n_shapes=8, n_colours=8, backgrounds=True, noise_std=10.0,
                        colour_jitter=40, colour_cast=25,
                        shape_weights=(0.22, 0.20, 0.15, 0.15, 0.10, 0.06, 0.06, 0.06),
                        colour_weights=(0.20, 0.17, 0.17, 0.12, 0.08, 0.12, 0.07, 0.07),
                        background_weights=(0.30, 0.10, 0.0, 0.0, 0.20, 0.25, 0.15)),
}


def preset_config(preset: str) -> ShapesConfig:
    """The :class:`ShapesConfig` of a preset name (``"coco"``, ``"stress"`` or ``"web"``)."""
    if preset not in PRESETS:
        raise VlmkitError(f"shapes preset must be one of {sorted(PRESETS)}, got {preset!r}")
    return PRESETS[preset]


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
        objs[i, :k, 0] = _draw(rng, cfg.n_shapes, k, cfg.shape_weights)
        objs[i, :k, 1] = _draw(rng, cfg.n_colours, k, cfg.colour_weights)
        objs[i, :k, 2] = rng.integers(len(SIZES), size=k)
        objs[i, :k, 3] = positions
    return objs


def _draw(rng: np.random.Generator, n: int, k: int, weights: tuple[float, ...] | None) -> np.ndarray:
    if weights is None:
        return rng.integers(n, size=k)  # the uniform stream (unchanged for the coco and stress presets)
    p = np.asarray(weights, dtype=np.float64)
    return rng.choice(n, size=k, p=p / p.sum())


def sample_backgrounds(n: int, rng: np.random.Generator, cfg: ShapesConfig) -> np.ndarray:
    """Background index per image (n,) int8; all −1 (plain grey, no attribute) unless ``cfg.backgrounds``."""
    if not cfg.backgrounds:
        return np.full(n, -1, dtype=np.int8)
    if cfg.background_weights is not None:
        return _draw(rng, len(ALL_BACKGROUNDS), n, cfg.background_weights).astype(np.int8)
    return rng.integers(len(BACKGROUNDS), size=n).astype(np.int8)


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
    elif shape == "hexagon":
        pts = [(np.cos(a), np.sin(a)) for a in np.arange(6) * np.pi / 3]
    elif shape == "diamond":
        pts = [(0.72 * np.cos(a), 1.1 * np.sin(a)) for a in np.arange(4) * np.pi / 2]
    elif shape == "cross":
        w = 0.36
        pts = [(-w, -1), (w, -1), (w, -w), (1, -w), (1, w), (w, w), (w, 1), (-w, 1), (-w, w), (-1, w), (-1, -w),
               (-w, -w)]
    else:
        raise ValueError(shape)
    ca, sa = np.cos(angle), np.sin(angle)
    return [(cx + r * (x * ca - y * sa), cy + r * (x * sa + y * ca)) for x, y in pts]


def _background(big: int, background: int, rng: np.random.Generator) -> Image.Image:
    """The canvas: plain grey (−1, the stress preset) or one of :data:`ALL_BACKGROUNDS`."""
    name = ALL_BACKGROUNDS[background] if background >= 0 else "grey"
    if name == "dark":
        level = int(rng.integers(35, 71))
        return Image.new("RGB", (big, big), (level, level, level))
    if name == "grey":
        level = int(rng.integers(200, 246))
        return Image.new("RGB", (big, big), (level, level, level))
    if name == "tinted":  # a random pastel
        return Image.new("RGB", (big, big), tuple(int(v) for v in rng.integers(150, 246, size=3)))
    if name == "gradient":  # between two random light-to-mid colours, horizontal or vertical
        a, b = rng.integers(110, 250, size=(2, 3)).astype(np.float32)
        t = np.linspace(0.0, 1.0, big, dtype=np.float32)
        ramp = a[None, :] * (1 - t[:, None]) + b[None, :] * t[:, None]  # (big, 3)
        arr = np.broadcast_to(ramp[:, None, :] if rng.random() < 0.5 else ramp[None, :, :], (big, big, 3))
        return Image.fromarray(arr.round().astype(np.uint8).copy())
    if name == "speckled":  # light paper with dark flecks (a texture)
        level = int(rng.integers(205, 246))
        flecks = rng.random((big, big)) < 0.07
        arr = np.where(flecks, level - rng.integers(60, 120, size=(big, big)), level).astype(np.uint8)
        return Image.fromarray(np.repeat(arr[:, :, None], 3, axis=2))
    level = int(rng.integers(225, 251))
    if name == "white":
        return Image.new("RGB", (big, big), (level, level, level))
    period = big // 8
    yy, xx = np.mgrid[0:big, 0:big]
    phase = int(rng.integers(period))
    if name == "striped":
        dark = ((xx + yy + phase) // (period // 2)) % 2 == 0
    else:  # checkered
        dark = ((xx + phase) // period + (yy + phase) // period) % 2 == 0
    arr = np.where(dark, level - 55, level).astype(np.uint8)
    return Image.fromarray(np.repeat(arr[:, :, None], 3, axis=2))


def render_scene(objs: np.ndarray, rng: np.random.Generator, cfg: ShapesConfig, background: int = -1) -> np.ndarray:
    """Draw one scene (MAX_OBJECTS, 4) on ``background`` into a uint8 (S, S, 3) array.

    Drawn at 2× and downsampled for anti-aliasing; background level, small jitter of
    position, rotation and hue, and pixel noise come from ``rng``.
    """
    s = cfg.image_size
    big = 2 * s
    img = _background(big, int(background), rng)
    draw = ImageDraw.Draw(img)
    slot_w = big / len(POSITIONS)
    for shape_i, colour_i, size_i, pos_i in objs:
        if shape_i < 0:
            continue
        r = big * (0.085 if size_i == 0 else 0.15) * float(rng.uniform(0.92, 1.08))
        cx = slot_w * (pos_i + 0.5) + float(rng.uniform(-0.08, 0.08)) * slot_w
        cy = big * 0.5 + float(rng.uniform(-0.22, 0.22)) * big
        rgb = tuple(int(np.clip(c + rng.integers(-cfg.colour_jitter, cfg.colour_jitter + 1), 0, 255))
                    for c in RGB[COLOURS[colour_i]])
        if cfg.fade > 0:
            rgb = tuple(int(round((1 - cfg.fade) * c + cfg.fade * 128)) for c in rgb)
        shape = SHAPES[shape_i]
        if shape == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=rgb)
        elif shape == "ring":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=rgb, width=max(2, int(round(0.38 * r))))
        else:
            angle = float(rng.uniform(-0.25, 0.25)) if shape != "star" else float(rng.uniform(-0.2, 0.2))
            draw.polygon(_polygon(shape, cx, cy, r, angle), fill=rgb)
    small = img.resize((s, s), Image.BILINEAR)
    if cfg.blur > 0:
        small = small.filter(ImageFilter.GaussianBlur(cfg.blur))
    arr = np.asarray(small, dtype=np.float32)
    if cfg.colour_cast > 0:
        arr += rng.integers(-cfg.colour_cast, cfg.colour_cast + 1, size=3).astype(np.float32)
    if cfg.noise_std > 0:
        arr += rng.normal(0.0, cfg.noise_std, size=arr.shape).astype(np.float32)
    return np.clip(arr, 0, 255).round().astype(np.uint8)


# --------------------------------------------------------------------------- captions


@dataclass
class CaptionSpec:
    """Structured content of captions: clause attributes and count, for computing truth.

    ``clauses``: (M, MAX_OBJECTS, 4) int8, −1 = unspecified attribute; a clause with all
    attributes −1 is absent.  ``count``: (M,) int8, −1 = no count claim.  ``background``:
    (M,) int8 index into :data:`BACKGROUNDS`, −1 = no background claim (``None``: none at all).
    """

    clauses: np.ndarray
    count: np.ndarray
    background: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.background is None:
            self.background = np.full(len(self.count), -1, dtype=np.int8)

    def take(self, idx: np.ndarray) -> "CaptionSpec":
        return CaptionSpec(self.clauses[idx], self.count[idx], self.background[idx])

    @property
    def n_atoms(self) -> np.ndarray:
        return (self.clauses >= 0).sum(axis=(1, 2)) + (self.count >= 0) + (self.background >= 0)


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


def background_phrase(b: int) -> str:
    return f"a {ALL_BACKGROUNDS[b]} background"


def join_list(parts: list[str]) -> str:
    """"a", "a and b", "a, b and c" ("" for none)."""
    if not parts:
        return ""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def caption_text(clauses: np.ndarray, count: int, background: int = -1) -> str:
    """The plain grammar (stress preset and web captions): ``[count [on bg] ":"] clauses [on bg]``."""
    parts = [describe_object(*map(int, c)) for c in clauses if (c >= 0).any()]
    bg = f" on {background_phrase(background)}" if background >= 0 else ""
    if count >= 0 and not parts:
        return count_phrase(count) + bg
    body = join_list(parts)
    return f"{count_phrase(count)}{bg}: {body}" if count >= 0 else body + bg


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


COCO_TEMPLATES = {
    4: ("{count}{bg}: {objs}", "{objs}; {count} in all{bg}", "a picture of {count}{bg}: {objs}"),
    3: ("{objs}", "there is {objs}", "a drawing of {objs}", "{objs} side by side"),
    2: ("{objs}", "{objs} in a row", "an image with {objs}"),
    1: ("{objs}{bg}", "{bg_lead}, {objs}", "{objs} against {bg_bare}"),
    0: ("{count}{bg}, one of them {objs}", "{count}{bg}, including {objs}", "{count}{bg}; one is {objs}",
        "{objs} and more: {count}{bg}", "{count}{bg}, among them {objs}"),
    # the rare purely generic caption (spec 0)
    -1: ("{count}{bg}", "a picture of {count}{bg}", "just {count}{bg}", "a simple image: {count}{bg}"),
}
# Which attributes (shape, colour, size, position) each COCO-style form states of each object.
COCO_FORMS = {4: (1, 1, 1, 1), 3: (1, 1, 1, 0), 2: (1, 1, 0, 1), 1: (1, 0, 1, 0), 0: (1, 1, 1, 0)}


def coco_captions(objs: np.ndarray, backgrounds: np.ndarray, rng: np.random.Generator,
                  p_generic: float = 0.08) -> tuple[list[str], CaptionSpec, np.ndarray]:
    """Five COCO-style captions per image, each from its own angle (see module docstring).

    ====  =============================================  ===========================================
    spec  what it states                                 example
    ====  =============================================  ===========================================
    4     count, background, every object in full        "two shapes on a dark background: a large red
                                                         circle on the left and a small blue star on
                                                         the right"
    3     every object: size, colour, shape              "there is a small blue star and a large red
                                                         circle"
    2     every object: colour, shape, position          "a red circle on the left and a blue star on
                                                         the right in a row"
    1     every object: size, shape; background          "a large circle and a small star against a
                                                         dark background"
    0     count, background, one object (size, colour,   "two shapes on a dark background, one of them
          shape); with ``p_generic`` count and           a large red circle" / "two shapes on a dark
          background only                                background"
    ====  =============================================  ===========================================

    Wording varies by template (drawn from ``rng``); truth depends only on the stated atoms.
    """
    n = len(objs)
    clauses = np.full((n, 5, MAX_OBJECTS, len(ATTRS)), -1, dtype=np.int8)
    count = np.full((n, 5), -1, dtype=np.int8)
    bgs = np.full((n, 5), -1, dtype=np.int8)
    texts: list[str] = []
    for i, o in enumerate(objs):
        present = np.flatnonzero(o[:, 0] >= 0)
        k, bg = len(present), int(backgrounds[i])
        for slot, spec_level in enumerate((4, 3, 2, 1, 0)):
            keep = np.array(COCO_FORMS[spec_level], dtype=bool)
            if spec_level == 0:
                chosen = present[[int(rng.integers(k))]]
            elif spec_level in (3, 1):
                chosen = rng.permutation(present)
            else:
                chosen = present
            form = spec_level
            if spec_level == 0 and rng.random() < p_generic:
                form, chosen = -1, present[:0]
            c = o[chosen].copy()
            c[:, ~keep] = -1
            clauses[i, slot, : len(chosen)] = c
            if spec_level in (4, 0):
                count[i, slot] = k
            if spec_level in (4, 1, 0):
                bgs[i, slot] = bg
            template = COCO_TEMPLATES[form][int(rng.integers(len(COCO_TEMPLATES[form])))]
            bare = background_phrase(bg) if bg >= 0 else "a grey background"
            texts.append(template.format(
                count=count_phrase(k), bg=f" on {bare}", bg_bare=bare, bg_lead=f"on {bare}",
                objs=join_list([describe_object(*map(int, x)) for x in c])))
    spec = CaptionSpec(clauses.reshape(n * 5, MAX_OBJECTS, len(ATTRS)), count.reshape(n * 5), bgs.reshape(n * 5))
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


def make_web_captions(objs: np.ndarray, rng: np.random.Generator, per_image: int = 1, p_drop: float = 0.35,
                      p_wrong: float = 0.05, p_other: float = 0.1, backgrounds: np.ndarray | None = None,
                      p_background: float = 0.4, cfg: ShapesConfig | None = None) -> tuple[list[str], CaptionSpec]:
    """Noisy alt-text style captions ("web-like") for pretraining.

    Each caption describes 1..all objects with each attribute dropped with ``p_drop``,
    one attribute replaced by a wrong value with ``p_wrong``, and with ``p_other`` it is
    about another image altogether.  With ``backgrounds`` (the coco preset), clauses come in
    random order and the background is stated with ``p_background``.  Its
    :class:`CaptionSpec` is what it *says*, so truth stays exact.
    """
    cfg = cfg or ShapesConfig()
    n = len(objs)
    m = n * per_image
    clauses = np.full((m, MAX_OBJECTS, len(ATTRS)), -1, dtype=np.int8)
    count = np.full(m, -1, dtype=np.int8)
    bgs = np.full(m, -1, dtype=np.int8)
    texts = []
    sizes = (cfg.n_shapes, cfg.n_colours, len(SIZES), len(POSITIONS))
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
        if backgrounds is not None:
            c = c[rng.permutation(k)]
        clauses[row, :k] = c
        if rng.random() < 0.3:
            count[row] = len(present)
        if backgrounds is not None and rng.random() < p_background:
            bgs[row] = backgrounds[i]
        wrapper = WEB_WRAPPERS[int(rng.integers(len(WEB_WRAPPERS)))]
        texts.append(wrapper.format(caption_text(clauses[row], int(count[row]), int(bgs[row]))))
    return texts, CaptionSpec(clauses, count, bgs)


#: Alt-text words of the web domain: each canonical word is replaced by its web synonym with p = 0.5,
#: so the fine-tuning vocabulary is half-known to the stand-in (as web alt-text says "dot", COCO "circle").
WEB_SYNONYMS = {
    "circle": "dot", "square": "box", "cross": "plus sign", "hexagon": "hex", "diamond": "rhombus", "ring": "donut",
    "purple": "violet", "pink": "magenta", "cyan": "turquoise", "yellow": "gold",
    "small": "tiny", "large": "big", "shape": "icon", "shapes": "icons",
}
ALT_WRAPPERS = (
    "{}", "{}", "stock photo of {}", "{} | free clipart", "{} vector", "cute {}", "{} icon set",
    "img {num}: {}", "{} - illustration", "download {} png", "{} #shapes", "{} wallpaper",
)


def _web_words(text: str, rng: np.random.Generator) -> str:
    words = text.split(" ")
    return " ".join(WEB_SYNONYMS[w] if w in WEB_SYNONYMS and rng.random() < 0.5 else w for w in words)


def alt_text_captions(objs: np.ndarray, backgrounds: np.ndarray, rng: np.random.Generator, per_image: int = 2,
                      cfg: ShapesConfig | None = None, p_other: float = 0.1,
                      p_wrong: float = 0.05, p_dense: float = 0.0) -> tuple[list[str], CaptionSpec]:
    """Short, noisy alt-text captions of the *web* domain (the stand-in's pretraining text).

    Unlike the coco preset's five annotator captions, an alt-text names one object (p = 0.6) or two
    as keyword phrases ("red dot, big blue star | free clipart"): colour stated with p = 0.75, size
    with p = 0.4, position with p = 0.12 (the coco captions state positions in two of five forms), a
    count with p = 0.15 (as a digit half the time: "2 shapes"), the background with p = 0.2; half of
    the attribute words are web synonyms (:data:`WEB_SYNONYMS`); one attribute is wrong with
    ``p_wrong`` and the caption is about another image with ``p_other``.  Its :class:`CaptionSpec` is
    what it *says*, so truth stays exact.

    With ``p_dense`` > 0 a caption is instead, with that probability, a *dense re-caption* of the web
    image (as web data re-captioned by a captioning model, LaCLIP / DataComp style): every object, its
    colour (p = 0.95), size (0.7) and position (0.3), a count (0.4) and the background (0.5) — still in
    the web vocabulary, wrappers and noise, never in the coco captions' sentence forms.  ``p_dense=0``
    draws nothing extra: the random stream, and so the captions, equal those without the argument.
    """
    if not 0.0 <= p_dense <= 1.0:
        raise VlmkitError(f"p_dense must be in [0, 1], got {p_dense}")
    cfg = cfg or PRESETS["web"]
    n = len(objs)
    m = n * per_image
    clauses = np.full((m, MAX_OBJECTS, len(ATTRS)), -1, dtype=np.int8)
    count = np.full(m, -1, dtype=np.int8)
    bgs = np.full(m, -1, dtype=np.int8)
    texts = []
    sizes = (cfg.n_shapes, cfg.n_colours, len(SIZES), len(POSITIONS))
    keep_p = np.array([1.0, 0.75, 0.4, 0.12])
    dense_keep_p = np.array([1.0, 0.95, 0.7, 0.3])
    for row in range(m):
        i = row // per_image
        if rng.random() < p_other:
            i = int(rng.integers(n))
        dense = p_dense > 0 and rng.random() < p_dense
        o = objs[i]
        present = np.flatnonzero(o[:, 0] >= 0)
        if dense:
            k, chosen = len(present), present
        else:
            k = min(len(present), 1 if rng.random() < 0.6 else 2)
            chosen = rng.choice(present, size=k, replace=False)
        c = o[chosen].copy()
        c[rng.random(c.shape) >= (dense_keep_p if dense else keep_p)[None, :]] = -1
        if rng.random() < p_wrong:
            a, b = int(rng.integers(k)), int(rng.integers(len(ATTRS)))
            c[a, b] = int(rng.integers(sizes[b]))
        clauses[row, :k] = c
        parts = []
        for x in c:
            words = [SIZES[x[2]]] if x[2] >= 0 else []
            words += [COLOURS[x[1]]] if x[1] >= 0 else []
            words.append(SHAPES[x[0]])
            words += [POSITION_PHRASE[POSITIONS[x[3]]]] if x[3] >= 0 else []
            parts.append(" ".join(words))
        body = ", ".join(parts) if rng.random() < 0.5 else " and ".join(parts)
        if rng.random() < (0.4 if dense else 0.15):
            count[row] = len(present)
            num = str(len(present)) if rng.random() < 0.5 else COUNT_WORDS[len(present)]
            body = f"{num} shape{'' if len(present) == 1 else 's'}: {body}"
        if rng.random() < (0.5 if dense else 0.2):
            bgs[row] = backgrounds[i]
            body += f" on {ALL_BACKGROUNDS[int(backgrounds[i])]} background"
        wrapper = ALT_WRAPPERS[int(rng.integers(len(ALT_WRAPPERS)))]
        texts.append(wrapper.format(_web_words(body, rng), num=int(rng.integers(100, 9999))))
    return texts, CaptionSpec(clauses, count, bgs)


# --------------------------------------------------------------------------- truth


_PERMS = np.array(list(itertools.permutations(range(MAX_OBJECTS))), dtype=np.int64)


def match_atoms(objs: np.ndarray, spec: CaptionSpec, backgrounds: np.ndarray | None = None) -> np.ndarray:
    """Best number of satisfied atoms for every (image, caption) pair: int16 (N, M).

    Clauses are assigned to distinct objects (all 3! assignments of clause slots to
    object slots are tried; an empty object slot satisfies nothing); the count atom holds
    when it equals the image's number of objects; the background atom when it equals the
    image's background (``backgrounds``, (N,) int8; −1 or ``None``: a plain grey image that
    no background claim fits).
    """
    present = objs[:, :, 0] >= 0  # (N, 3)
    cl = spec.clauses  # (M, 3, 4)
    # hits[c][o]: atoms of clause c satisfied by object o, (N, M) each.  The count depends only on
    # the object's and the clause's attributes, so both are coded (one integer per distinct
    # attribute tuple), the count is tabulated once per (object code, clause code) and each
    # (N, M) matrix is a lookup — the same numbers as comparing the attributes pair by pair.
    obj_codes, obj_tuples = np.unique(objs.reshape(-1, objs.shape[-1]), axis=0, return_inverse=True)
    cl_codes, cl_tuples = np.unique(cl.reshape(-1, cl.shape[-1]), axis=0, return_inverse=True)
    table = ((obj_codes[:, None, :] == cl_codes[None, :, :]) & (cl_codes[None, :, :] >= 0)).sum(-1, dtype=np.int16)
    obj_tuples = obj_tuples.reshape(objs.shape[:2])  # (N, 3) → row of the table
    cl_tuples = cl_tuples.reshape(cl.shape[:2])  # (M, 3) → column of the table
    hits = [
        [
            table[obj_tuples[:, o]][:, cl_tuples[:, c]] * present[:, o, None]
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
    best += count_ok
    if backgrounds is not None:
        best += (spec.background[None, :] >= 0) & (spec.background[None, :] == np.asarray(backgrounds)[:, None])
    return best


class ShapesTruth(Truth):
    """Exact truth of the embedded data, computed on demand from scene and caption specs."""

    exact = True

    def __init__(self, objs: np.ndarray, spec: CaptionSpec, backgrounds: np.ndarray | None = None):
        self.objs = objs
        self.spec = spec
        self.backgrounds = (np.full(len(objs), -1, dtype=np.int8) if backgrounds is None
                            else np.asarray(backgrounds, dtype=np.int8))
        self._atoms = spec.n_atoms

    def relevance(self, img_idx: np.ndarray, cap_idx: np.ndarray) -> np.ndarray:
        out = np.empty((len(img_idx), len(cap_idx)), dtype=np.float32)
        sub = self.spec.take(cap_idx)
        atoms = np.maximum(self._atoms[cap_idx], 1).astype(np.float32)
        for start in range(0, len(img_idx), 256):  # bounded memory
            rows = img_idx[start : start + 256]
            out[start : start + len(rows)] = match_atoms(self.objs[rows], sub, self.backgrounds[rows]) / atoms
        return out

    def positives(self, img_idx: np.ndarray, cap_idx: np.ndarray) -> np.ndarray:
        return self.relevance(img_idx, cap_idx) >= 1.0

    def subset(self, img_idx: np.ndarray, cap_idx: np.ndarray) -> "ShapesTruth":
        return ShapesTruth(self.objs[img_idx], self.spec.take(cap_idx), self.backgrounds[img_idx])

    def fingerprint(self) -> str:
        from ..utils import fingerprint

        return fingerprint(self.objs, self.spec.clauses, self.spec.count, self.spec.background, self.backgrounds)


# --------------------------------------------------------------------------- factory


def _cached_images(cache_dir: str | os.PathLike, render: Any, split: str, n: int, seed: int, preset: str,
                   cfg: ShapesConfig) -> np.ndarray:
    """``render()``'s images, kept in ``cache_dir`` (atomically written) under a key of every
    argument that decides them and of this module's source (a change to the drawing code
    never reads an old file)."""
    from dataclasses import asdict
    from pathlib import Path

    from ..utils import atomic_path, fingerprint

    key = fingerprint(split, int(n), int(seed), preset, json.dumps(asdict(cfg), sort_keys=True, default=str),
                      Path(__file__).read_bytes())
    path = Path(cache_dir) / f"shapes-{split}-{n}-{key}.npy"
    if path.is_file():
        try:
            images = np.load(path)
            if images.dtype == np.uint8 and len(images) == n:
                return images
        except (OSError, ValueError):
            pass  # unreadable: render again and replace it
    images = render()
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, images)
    return images


def make_shapes(
    split: str = "test",
    n_images: int | None = None,
    seed: int = 0,
    captions: str = "exact",
    config: ShapesConfig | None = None,
    web_per_image: int = 1,
    preset: str = "coco",
    image_cache: str | os.PathLike | None = None,
    web_dense: float = 0.0,
) -> PairDataset:
    """Generate a split of the embedded dataset, deterministically from ``seed``.

    Args:
        split: ``"pretrain"``, ``"train"``, ``"val"`` or ``"test"``; each split draws from
            its own stream, so splits are independent samples.
        n_images: images in the split (defaults: pretrain 10,000, train 5,000, val and
            test 1,000 — the test split mirrors COCO 1K: 1,000 images × 5,000 captions).
        seed: the master seed.
        captions: ``"exact"`` (five captions per image in the preset's style) or ``"web"``
            (noisy alt-text, ``web_per_image`` per image, for pretraining).
        config: overrides the preset's :class:`ShapesConfig`.
        preset: ``"coco"`` (default: near-unique COCO-style captions, a handful of true
            images per caption), ``"stress"`` (generic captions true of a third of the
            gallery; false negatives everywhere) or ``"web"`` (the stand-in's pretraining domain:
            other backgrounds and image statistics; with ``captions="web"`` short alt-text,
            :func:`alt_text_captions`).  See :data:`PRESETS` and data/README.md.
        image_cache: a directory where the rendered images are kept (``shapes-<key>.npy``,
            keyed by split, size, seed, preset, config and this module's source) and read back
            by the next call with the same arguments — rendering is most of the cost (≈ 5 ms an
            image), and every notebook of a workbook run rebuilds the same test split.  The
            images are the same either way; nothing else is cached.
        web_dense: with ``preset="web", captions="web"``, the share of captions that are dense
            re-captions (every object named; :func:`alt_text_captions`' ``p_dense``).
    """
    base = preset_config(preset)
    cfg = config or base
    rng = _rng(seed, split)  # validates the split name
    n = DEFAULT_SIZES[split] if n_images is None and split in DEFAULT_SIZES else n_images
    if n is None or n < 1:
        raise VlmkitError(f"n_images must be a positive integer, got {n_images!r}")
    objs = sample_scenes(n, rng, cfg)
    backgrounds = sample_backgrounds(n, np.random.default_rng([seed, SPLITS[split], 3]), cfg)
    def render() -> np.ndarray:
        render_rng = np.random.default_rng([seed, SPLITS[split], 1])
        return np.stack([render_scene(o, render_rng, cfg, b) for o, b in zip(objs, backgrounds)])

    images = render() if image_cache is None else _cached_images(image_cache, render, split, n, seed, preset, cfg)
    cap_rng = np.random.default_rng([seed, SPLITS[split], 2])
    if web_dense and (captions != "web" or preset != "web"):
        raise VlmkitError(f"web_dense applies to the web preset's alt-text only (captions='web', preset='web'), "
                          f"got captions={captions!r}, preset={preset!r}")
    if captions == "exact":
        if preset in ("coco", "web"):  # web scenes with coco-style captions: the image shift alone
            texts, spec, specificity = coco_captions(objs, backgrounds, cap_rng)
        else:
            texts, spec, specificity = exact_captions(objs, cap_rng)
        per = 5
        meta = {"specificity": specificity}
    elif captions == "web":
        if web_per_image < 1:
            raise VlmkitError(f"web_per_image must be ≥ 1, got {web_per_image}")
        if preset == "web":
            texts, spec = alt_text_captions(objs, backgrounds, cap_rng, per_image=web_per_image, cfg=cfg,
                                            p_dense=web_dense)
        else:
            texts, spec = make_web_captions(objs, cap_rng, per_image=web_per_image, cfg=cfg,
                                            backgrounds=backgrounds if cfg.backgrounds else None)
        per = web_per_image
        meta = {"specificity": np.full(len(texts), -1, dtype=np.int8)}
    else:
        raise VlmkitError(f"captions must be 'exact' or 'web', got {captions!r}")
    meta["noisy"] = np.zeros(len(texts), dtype=bool)
    prefix = "shapes" if preset == "coco" else f"shapes-{preset}"
    image_meta = {"count": (objs[:, :, 0] >= 0).sum(axis=1).astype(np.int8)}
    if cfg.backgrounds:
        image_meta["background"] = backgrounds
    return PairDataset(
        name=f"{prefix}-{split}" + ("-web" if captions == "web" else "") + f"-s{seed}",
        images=ArrayImages(images),
        captions=texts,
        caption_image=np.repeat(np.arange(n), per),
        image_ids=[f"{split}-{seed}-{i:06d}" for i in range(n)],
        truth=ShapesTruth(objs, spec, backgrounds),
        caption_meta=meta,
        image_meta=image_meta,
    )


def scene_of(ds: PairDataset, i: int) -> list[dict]:
    """The objects of image ``i`` of an embedded dataset as readable dicts."""
    if not isinstance(ds.truth, ShapesTruth):
        raise VlmkitError(f"{ds.name} is not an embedded shapes dataset")
    out = []
    for o in ds.truth.objs[i]:
        if o[0] >= 0:
            out.append({"shape": SHAPES[o[0]], "colour": COLOURS[o[1]], "size": SIZES[o[2]],
                        "position": POSITIONS[o[3]]})
    return out


def domain_census(ds: PairDataset) -> dict[str, float]:
    """What a split of the embedded data looks like, for comparing the web domain (the stand-in's
    pretraining) with the coco preset (fine-tuning and test): objects per image, background mix,
    image statistics, caption length and vocabulary, and how often captions state each attribute.
    Shares are fractions; ``background:<name>`` per background; ``states:<attr>`` = share of
    captions stating that attribute of at least one object (``count``/``background`` as atoms)."""
    if not isinstance(ds.truth, ShapesTruth):
        raise VlmkitError(f"domain_census: {ds.name} is not an embedded shapes dataset")
    objs, spec, bgs = ds.truth.objs, ds.truth.spec, ds.truth.backgrounds
    arr = ds.images.array.astype(np.float32)
    words = [c.split() for c in ds.captions]
    vocab = {w.strip(",.:;|#") for ws in words for w in ws} - {""}
    out: dict[str, float] = {"images": float(len(objs)), "captions": float(len(ds.captions)),
                             "objects per image": float((objs[:, :, 0] >= 0).sum(1).mean()),
                             "pixel mean": float(arr.mean()), "pixel std": float(arr.std()),
                             "colourfulness (mean channel spread)": float((arr.max(-1) - arr.min(-1)).mean()),
                             "words per caption": float(np.mean([len(w) for w in words])),
                             "vocabulary": float(len(vocab))}
    for b, name in enumerate(ALL_BACKGROUNDS):
        out[f"background:{name}"] = float(np.mean(bgs == b))
    for a, name in enumerate(ATTRS):
        out[f"states:{name}"] = float(np.mean((spec.clauses[:, :, a] >= 0).any(1)))
    out["states:count"] = float(np.mean(spec.count >= 0))
    out["states:background"] = float(np.mean(spec.background >= 0))
    out["objects stated per caption"] = float(((spec.clauses >= 0).any(-1)).sum(1).mean())
    m = len(ds.captions)
    own = np.concatenate([np.diagonal(ds.truth.relevance(ds.caption_image[j:j + 256], np.arange(j, min(j + 256, m))))
                          for j in range(0, m, 256)])
    out["captions true of their image"] = float(np.mean(own >= 1.0))
    return out
