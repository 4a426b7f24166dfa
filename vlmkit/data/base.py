"""The one dataset interface every loader returns: :class:`PairDataset`.

A ``PairDataset`` holds N images and M captions, the image each caption was written for
(the binary "matched / not matched" label of the field) and, when known, the *extended*
ground truth of every (image, caption) pair: a boolean "this caption is true of this
image" and a graded relevance in [0, 1].  The embedded dataset knows the truth exactly;
real datasets know it where the user supplies extended positives (ECCV Caption, CxC).

Images come from an :class:`ImageSource` (files on disk, or an in-memory uint8 array),
truth from a :class:`Truth`.  Both can be sliced by :meth:`PairDataset.subset`, which is
how splits and COCO-1K folds are made.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import scipy.sparse as sp
from PIL import Image, ImageFile

from ..utils import VlmkitError, fingerprint, read_positives_json

# Truncated files must raise, never decode to a half-grey image silently.
ImageFile.LOAD_TRUNCATED_IMAGES = False

Index = np.ndarray | Sequence[int] | slice | None


def _as_index(idx: Index, n: int) -> np.ndarray:
    if idx is None:
        return np.arange(n)
    if isinstance(idx, slice):
        return np.arange(n)[idx]
    arr = np.asarray(idx, dtype=np.int64).reshape(-1)
    if arr.size and (arr.min() < -n or arr.max() >= n):
        raise VlmkitError(f"index out of range: expected values in [0, {n}), got min {arr.min()} max {arr.max()}")
    return arr % n if arr.size else arr


@dataclass(frozen=True)
class SkipRecord:
    """Something a loader left out on purpose, with the place and the reason."""

    where: str
    reason: str


# --------------------------------------------------------------------------- images


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB the way a user expects.

    Grayscale is replicated, CMYK converted, transparency composited on white, and
    16/32-bit integer images rescaled from their own value range to 0..255.
    """
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        arr8 = ((arr - lo) * scale).round().clip(0, 255).astype(np.uint8)
        return Image.fromarray(arr8, mode="L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def open_image(path: str | os.PathLike) -> Image.Image:
    """Open, fully decode and convert an image to RGB; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise VlmkitError(f"image file not found: {path}")
    try:
        with Image.open(path) as img:
            img.load()
            return to_rgb(img)
    except VlmkitError:
        raise
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError… for bad files
        raise VlmkitError(f"cannot read image {path}: {type(exc).__name__}: {exc} (corrupt, truncated or not an "
                          "image?)") from exc


class ImageSource:
    """Where a dataset's images come from.  Subclasses implement ``load`` and ``subset``."""

    def __len__(self) -> int:
        raise NotImplementedError

    def load(self, i: int) -> Image.Image:
        raise NotImplementedError

    def subset(self, idx: np.ndarray) -> "ImageSource":
        raise NotImplementedError

    def fingerprint(self) -> str:
        raise NotImplementedError

    def as_array(self) -> np.ndarray | None:
        """A uint8 (N, H, W, 3) array when the images live in memory, else ``None``."""
        return None


class FileImages(ImageSource):
    """Images stored as files; ``paths`` are absolute or relative to ``root``."""

    def __init__(self, paths: Sequence[str | os.PathLike], root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else None
        self.paths = [Path(p) if self.root is None else self.root / p for p in paths]

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, i: int) -> Image.Image:
        return open_image(self.paths[i])

    def subset(self, idx: np.ndarray) -> "FileImages":
        out = FileImages([])
        out.paths = [self.paths[int(i)] for i in idx]
        return out

    def fingerprint(self) -> str:
        # Path, size and mtime of every file: cheap, and changes when a file is replaced.
        stats = []
        for p in self.paths:
            try:
                st = p.stat()
                stats.append((str(p), st.st_size, int(st.st_mtime)))
            except OSError:
                stats.append((str(p), -1, -1))
        return fingerprint(stats)


class ArrayImages(ImageSource):
    """Images held in memory as a uint8 array (N, H, W, 3) or (N, H, W) for grayscale."""

    def __init__(self, array: np.ndarray):
        if array.dtype != np.uint8 or array.ndim not in (3, 4):
            raise VlmkitError(f"ArrayImages expects uint8 (N,H,W[,3]); got {array.dtype} {array.shape}")
        if array.ndim == 3:
            array = np.repeat(array[..., None], 3, axis=-1)
        if array.shape[-1] != 3:
            raise VlmkitError(f"ArrayImages expects 3 channels; got shape {array.shape}")
        self.array = array
        self._fp: str | None = None

    def __len__(self) -> int:
        return len(self.array)

    def load(self, i: int) -> Image.Image:
        return Image.fromarray(self.array[i], mode="RGB")

    def subset(self, idx: np.ndarray) -> "ArrayImages":
        return ArrayImages(self.array[idx])

    def fingerprint(self) -> str:
        if self._fp is None:
            self._fp = fingerprint(self.array)
        return self._fp

    def as_array(self) -> np.ndarray:
        return self.array


# --------------------------------------------------------------------------- truth


class Truth:
    """Extended ground truth of (image, caption) pairs beyond the one-to-one label."""

    exact: bool = False  # True when every pair is known (embedded data), False when partial

    def positives(self, img_idx: np.ndarray, cap_idx: np.ndarray) -> np.ndarray:
        """Boolean (len(img_idx), len(cap_idx)): caption is true of image."""
        raise NotImplementedError

    def relevance(self, img_idx: np.ndarray, cap_idx: np.ndarray) -> np.ndarray:
        """Float32 in [0, 1]; defaults to the boolean positives."""
        return self.positives(img_idx, cap_idx).astype(np.float32)

    def subset(self, img_idx: np.ndarray, cap_idx: np.ndarray) -> "Truth":
        raise NotImplementedError

    def fingerprint(self) -> str:
        raise NotImplementedError


class SparseTruth(Truth):
    """Extended positives given as a sparse N×M matrix (e.g. from ECCV Caption / CxC JSON)."""

    def __init__(self, matrix: sp.spmatrix):
        self.matrix = sp.csr_matrix(matrix, dtype=bool)

    def positives(self, img_idx: np.ndarray, cap_idx: np.ndarray) -> np.ndarray:
        return self.matrix[img_idx][:, cap_idx].toarray()

    def subset(self, img_idx: np.ndarray, cap_idx: np.ndarray) -> "SparseTruth":
        return SparseTruth(self.matrix[img_idx][:, cap_idx])

    def fingerprint(self) -> str:
        m = self.matrix.tocoo()
        return fingerprint(m.shape, m.row, m.col)


# --------------------------------------------------------------------------- dataset


@dataclass
class PairDataset:
    """N images, M captions, the one-to-one labels, and extended truth when known.

    Attributes:
        name: a short human-readable name (shown in tables and cache keys).
        images: the :class:`ImageSource`.
        captions: M caption strings.
        caption_image: int64 (M,), the index of the image each caption was written for.
        image_ids: N stable identifiers (file name, COCO id, …).
        truth: extended truth, or ``None`` when only the one-to-one labels are known.
        caption_meta: optional per-caption columns (e.g. ``specificity`` of embedded captions).
        skipped: what the loader left out and why (documented skips, never silent).

    Classification data (image folders, Fashion-MNIST) is a
    :class:`vlmkit.data.folder.ClassificationDataset`; its ``as_pairs()`` gives a
    ``PairDataset`` with one class-prompt caption per image and every same-class pair
    marked true.
    """

    name: str
    images: ImageSource
    captions: list[str]
    caption_image: np.ndarray
    image_ids: list[str]
    truth: Truth | None = None
    caption_meta: dict[str, np.ndarray] = field(default_factory=dict)
    image_meta: dict[str, np.ndarray] = field(default_factory=dict)
    skipped: list[SkipRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.caption_image = np.asarray(self.caption_image, dtype=np.int64).reshape(-1)
        n, m = len(self.images), len(self.captions)
        if len(self.image_ids) != n:
            raise VlmkitError(f"{self.name}: {len(self.image_ids)} image_ids for {n} images")
        if len(self.caption_image) != m:
            raise VlmkitError(f"{self.name}: caption_image has {len(self.caption_image)} entries for {m} captions")
        if m and (self.caption_image.min() < 0 or self.caption_image.max() >= n):
            bad = int(np.flatnonzero((self.caption_image < 0) | (self.caption_image >= n))[0])
            raise VlmkitError(f"{self.name}: caption {bad} points at image {self.caption_image[bad]}, but there are "
                              f"{n} images")
        for i, c in enumerate(self.captions):
            if not isinstance(c, str) or not c.strip():
                raise VlmkitError(f"{self.name}: caption {i} is empty or not a string: {c!r}")
        for key, col in {**self.caption_meta}.items():
            if len(col) != m:
                raise VlmkitError(f"{self.name}: caption_meta[{key!r}] has {len(col)} rows for {m} captions")
        for key, col in {**self.image_meta}.items():
            if len(col) != n:
                raise VlmkitError(f"{self.name}: image_meta[{key!r}] has {len(col)} rows for {n} images")

    # -- sizes
    @property
    def num_images(self) -> int:
        return len(self.images)

    @property
    def num_captions(self) -> int:
        return len(self.captions)

    def __len__(self) -> int:
        return self.num_images

    def __repr__(self) -> str:
        kind = ("exact truth" if self.has_exact_truth
                else ("extended positives" if self.truth is not None else "one-to-one labels"))
        return f"PairDataset({self.name!r}, images={self.num_images}, captions={self.num_captions}, {kind})"

    @property
    def has_extended_positives(self) -> bool:
        return self.truth is not None

    @property
    def has_exact_truth(self) -> bool:
        return self.truth is not None and self.truth.exact

    # -- access
    def load_image(self, i: int) -> Image.Image:
        return self.images.load(int(i))

    def captions_of(self, i: int) -> np.ndarray:
        """Indices of the captions written for image ``i``."""
        return np.flatnonzero(self.caption_image == i)

    def labels(self, img_idx: Index = None, cap_idx: Index = None) -> np.ndarray:
        """The binary one-to-one labels: caption was written for image (bool matrix)."""
        ii = _as_index(img_idx, self.num_images)
        cc = _as_index(cap_idx, self.num_captions)
        return ii[:, None] == self.caption_image[cc][None, :]

    def positives(self, img_idx: Index = None, cap_idx: Index = None) -> np.ndarray:
        """Extended positives (bool matrix).

        Without extended truth this equals :meth:`labels`.  Partial truth (user-provided
        positive sets) is added to the one-to-one labels.  *Exact* truth (the embedded
        data) is authoritative on its own: a mismatched pair (noisy correspondence, an
        alt-text caption about another image) is labelled positive but is not true.
        """
        ii = _as_index(img_idx, self.num_images)
        cc = _as_index(cap_idx, self.num_captions)
        if self.truth is not None and self.truth.exact:
            return self.truth.positives(ii, cc)
        lab = ii[:, None] == self.caption_image[cc][None, :]
        if self.truth is None:
            return lab
        return lab | self.truth.positives(ii, cc)

    def relevance(self, img_idx: Index = None, cap_idx: Index = None) -> np.ndarray:
        """Graded relevance in [0, 1] (float32); with partial truth the one-to-one pair counts 1."""
        ii = _as_index(img_idx, self.num_images)
        cc = _as_index(cap_idx, self.num_captions)
        if self.truth is not None and self.truth.exact:
            return self.truth.relevance(ii, cc)
        lab = (ii[:, None] == self.caption_image[cc][None, :]).astype(np.float32)
        if self.truth is None:
            return lab
        return np.maximum(lab, self.truth.relevance(ii, cc))

    def false_negatives(self, img_idx: Index = None, cap_idx: Index = None) -> np.ndarray:
        """Pairs the one-to-one labels call negative although the caption is true.

        (The converse, pairs labelled positive that are not true, is ``labels() & ~positives()``:
        noisy correspondences, only visible with exact truth.)
        """
        return self.positives(img_idx, cap_idx) & ~self.labels(img_idx, cap_idx)

    def labelled_pairs_true(self, which: np.ndarray | None = None) -> np.ndarray:
        """For each caption: is it true of the image it is labelled with?  (bool, length M;
        ``which``: a caption mask to check, False elsewhere; computed per image, so memory stays
        small.)  Without extended truth, every labelled pair counts as true."""
        m = self.num_captions
        mask = np.ones(m, bool) if which is None else np.asarray(which, bool)
        if self.truth is None:
            return mask.copy()
        out = np.zeros(m, dtype=bool)
        caps = np.flatnonzero(mask)
        for img in np.unique(self.caption_image[caps]):
            mine = caps[self.caption_image[caps] == img]
            out[mine] = self.positives(np.array([img]), mine)[0]
        return out

    # -- slicing
    def subset(self, image_indices: Iterable[int], name: str | None = None) -> "PairDataset":
        """The given images and all captions written for them, truth re-indexed."""
        ii = _as_index(np.asarray(list(image_indices) if not isinstance(image_indices, np.ndarray) else image_indices),
                       self.num_images)
        remap = np.full(self.num_images, -1, dtype=np.int64)
        remap[ii] = np.arange(len(ii))
        if len(np.unique(ii)) != len(ii):
            raise VlmkitError(f"{self.name}: subset() got repeated image indices")
        cc = np.flatnonzero(remap[self.caption_image] >= 0)
        # Keep captions grouped in the order of the new images (stable within an image).
        order = np.argsort(remap[self.caption_image[cc]], kind="stable")
        cc = cc[order]
        return PairDataset(
            name=name or f"{self.name}[{len(ii)}]",
            images=self.images.subset(ii),
            captions=[self.captions[c] for c in cc],
            caption_image=remap[self.caption_image[cc]],
            image_ids=[self.image_ids[i] for i in ii],
            truth=None if self.truth is None else self.truth.subset(ii, cc),
            caption_meta={k: np.asarray(v)[cc] for k, v in self.caption_meta.items()},
            image_meta={k: np.asarray(v)[ii] for k, v in self.image_meta.items()},
            skipped=list(self.skipped),
        )

    def with_extended_positives(self, path_or_map: str | os.PathLike | dict, direction: str = "i2t") -> "PairDataset":
        """Attach user-provided extended positives (ECCV Caption / CxC style).

        ``path_or_map`` is a JSON file or a dict mapping a query id to a list of positive
        ids.  With ``direction="i2t"`` queries are image ids and positives caption indices
        (or caption strings' ids given as ``str(index)``); with ``"t2i"`` the reverse.
        Unknown ids raise an error naming them.
        """
        mapping, where = read_positives_json(path_or_map)
        img_pos = {str(k): i for i, k in enumerate(self.image_ids)}
        rows, cols = [], []
        for q, pos in mapping.items():
            if not isinstance(pos, list):
                raise VlmkitError(f"{where}: positives of query {q!r} must be a list, got {type(pos).__name__}")
            for p in pos:
                if direction == "i2t":
                    img_key, cap_key = q, p
                elif direction == "t2i":
                    img_key, cap_key = p, q
                else:
                    raise VlmkitError(f"direction must be 'i2t' or 't2i', got {direction!r}")
                if str(img_key) not in img_pos:
                    raise VlmkitError(f"{where}: image id {img_key!r} is not in dataset {self.name!r}")
                try:
                    c = int(cap_key)
                except (TypeError, ValueError):
                    raise VlmkitError(f"{where}: caption id {cap_key!r} is not an integer caption index") from None
                if not 0 <= c < self.num_captions:
                    raise VlmkitError(f"{where}: caption index {c} is outside [0, {self.num_captions})")
                rows.append(img_pos[str(img_key)])
                cols.append(c)
        mat = sp.csr_matrix((np.ones(len(rows), bool), (rows, cols)), shape=(self.num_images, self.num_captions))
        out = PairDataset(**{**self.__dict__})
        out.truth = SparseTruth(mat)
        return out

    def fingerprint(self) -> str:
        """Changes when any image, caption, label or truth changes (for feature caches)."""
        return fingerprint(
            self.images.fingerprint(),
            self.captions,
            self.caption_image,
            None if self.truth is None else self.truth.fingerprint(),
        )
