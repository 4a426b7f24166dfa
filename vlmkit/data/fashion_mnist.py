"""Fashion-MNIST from its IDX files (Debian package ``dataset-fashion-mnist``).

Xiao, Rasul & Vollgraf (2017): 70,000 28×28 grayscale product images of 10 clothing
classes, 60,000 train and 10,000 test (1,000 per class).  The Debian package installs
the gzipped IDX files in ``/usr/share/datasets/fashion-mnist/``.

IDX format (LeCun's MNIST page): a big-endian header — two zero bytes, a type code
(``0x08`` = unsigned byte), the number of dimensions — then one big-endian int32 per
dimension, then the data in C order.  Images are ``0x00000803`` (N, 28, 28) and labels
``0x00000801`` (N,).  Objects are light on a black background, as in the files.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from ..utils import VlmkitError
from .base import ArrayImages
from .folder import ClassificationDataset, check_templates

FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"
# The official label names, and the names used in prompts (same order, label 0..9).
FASHION_MNIST_LABELS = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                        "Ankle boot")
FASHION_MNIST_CLASSNAMES = ("t-shirt", "trousers", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                            "ankle boot")
FASHION_MNIST_TEMPLATES = (
    "a photo of a {c}.",
    "a black and white photo of a {c}.",
    "a low resolution photo of a {c}.",
    "a product photo of a {c}.",
)
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_TYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str | os.PathLike, expect_magic: int | None = None) -> np.ndarray:
    """Read an IDX file (gzipped when its name ends in ``.gz``); errors name the file.

    The magic number is checked (against ``expect_magic`` when given) and the data must
    have exactly the size the header announces: a truncated or padded file raises.
    """
    path = Path(path)
    if not path.is_file():
        raise VlmkitError(f"IDX file not found: {path}")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                raw = fh.read()
        else:
            raw = path.read_bytes()
    except (EOFError, OSError, zlib.error) as exc:
        raise VlmkitError(f"{path}: cannot decompress ({type(exc).__name__}: {exc}); the file is truncated or "
                          "corrupt") from None
    if len(raw) < 4:
        raise VlmkitError(f"{path}: truncated IDX file ({len(raw)} bytes, shorter than the 4-byte magic number)")
    magic = int.from_bytes(raw[:4], "big")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES or raw[3] == 0:
        raise VlmkitError(f"{path}: not an IDX file (magic number 0x{magic:08x})")
    if expect_magic is not None and magic != expect_magic:
        raise VlmkitError(f"{path}: magic number 0x{magic:08x}, expected 0x{expect_magic:08x}")
    ndim, dtype = raw[3], _IDX_TYPES[raw[2]]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise VlmkitError(f"{path}: truncated IDX header ({len(raw)} bytes, expected {header})")
    shape = tuple(int.from_bytes(raw[4 + 4 * k: 8 + 4 * k], "big") for k in range(ndim))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    got = len(raw) - header
    if got != expected:
        what = "truncated" if got < expected else "has trailing bytes"
        raise VlmkitError(f"{path}: IDX file {what}: header announces shape {shape} ({expected} data bytes), found "
                          f"{got}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find(root: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (root / name).is_file():
            return root / name
    raise VlmkitError(f"Fashion-MNIST file not found: {root / (stem + '.gz')} (install the Debian package "
                      "dataset-fashion-mnist, or pass root=)")


def fashion_mnist_available(root: str | os.PathLike = FASHION_MNIST_ROOT, split: str = "test") -> bool:
    """Whether the IDX files of ``split`` are present under ``root`` (gzipped or not)."""
    if split not in _FILES:
        return False
    return all((Path(root) / (s + ".gz")).is_file() or (Path(root) / s).is_file() for s in _FILES[split])


def load_fashion_mnist(
    root: str | os.PathLike = FASHION_MNIST_ROOT,
    split: str = "test",
    limit: int | None = None,
    templates=None,
) -> ClassificationDataset:
    """Fashion-MNIST ``split`` ("train": 60,000, "test": 10,000) as a :class:`ClassificationDataset`.

    Images are 28×28 grayscale, held in memory as RGB (:class:`ArrayImages`); ``limit``
    keeps the first images in file order.  ``classnames`` are
    :data:`FASHION_MNIST_CLASSNAMES` (prompt-friendly forms of the official labels in
    :data:`FASHION_MNIST_LABELS`); ``templates`` default to :data:`FASHION_MNIST_TEMPLATES`.
    ``image_ids`` are ``"<split>/<index in file>"``.  A missing, truncated or corrupt
    file raises a ``VlmkitError`` naming it.
    """
    if split not in _FILES:
        raise VlmkitError(f"Fashion-MNIST split must be one of {tuple(_FILES)}, got {split!r}")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise VlmkitError(f"limit must be a positive integer or None, got {limit!r}")
    base = Path(root)
    if not base.is_dir():
        raise VlmkitError(f"Fashion-MNIST folder not found: {base} (install the Debian package dataset-fashion-mnist, "
                          "or pass root=)")
    img_path, lab_path = (_find(base, s) for s in _FILES[split])
    images = read_idx(img_path, expect_magic=0x00000803)
    labels = read_idx(lab_path, expect_magic=0x00000801)
    if images.dtype != np.uint8 or images.shape[1:] != (28, 28):
        raise VlmkitError(f"{img_path}: expected uint8 images of 28×28, got {images.dtype} {images.shape[1:]}")
    if len(images) != len(labels):
        raise VlmkitError(f"{img_path} holds {len(images)} images but {lab_path} holds {len(labels)} labels")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise VlmkitError(f"{lab_path}: labels must lie in 0..9, found {labels.min()}..{labels.max()}")
    n = len(images) if limit is None else min(limit, len(images))
    return ClassificationDataset(
        name=f"fashion-mnist/{split}" + (f"[{n}]" if n < len(images) else ""),
        images=ArrayImages(np.ascontiguousarray(images[:n])),
        labels=labels[:n].astype(np.int64),
        classnames=list(FASHION_MNIST_CLASSNAMES),
        templates=check_templates(templates if templates is not None else FASHION_MNIST_TEMPLATES),
        image_ids=[f"{split}/{i}" for i in range(n)],
    )
