"""Real-format loaders: shared checks, the skip/raise policy and the entry point :func:`load_dataset`.

The loaders themselves live next to this module, one per format:

==================  ===============================================  ==========================
format              function                                         returns
==================  ===============================================  ==========================
COCO captions JSON  :func:`vlmkit.data.coco.load_coco_captions`      :class:`PairDataset`
Karpathy split      :func:`vlmkit.data.karpathy.load_karpathy`       :class:`PairDataset`
CSV / TSV           :func:`vlmkit.data.tabular.load_csv`             :class:`PairDataset`
image folder        :func:`vlmkit.data.folder.load_image_folder`     :class:`ClassificationDataset`
Fashion-MNIST IDX   :func:`vlmkit.data.fashion_mnist.load_fashion_mnist`  :class:`ClassificationDataset`
==================  ===============================================  ==========================

**Bad input.** Problems with the *whole* input (a missing file or folder, malformed
JSON/CSV, a record without a required key, a duplicated id) always raise
:class:`~vlmkit.utils.VlmkitError` naming the file and the record.  Problems with *one
item* (an annotation pointing at a missing image or image file, an empty or non-string
caption, an undecodable image with ``verify_images=True``) follow ``on_error``:
``"raise"`` (default) raises a ``VlmkitError``; ``"skip"`` leaves the item out, appends a
:class:`~vlmkit.data.base.SkipRecord` to ``dataset.skipped`` and emits one
:class:`SkippedItemsWarning` summarising the count.  Items a loader leaves out by design
(an image without any caption, captions beyond ``captions_per_image``) are recorded in
``dataset.skipped`` too, without a warning.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

from ..utils import VlmkitError
from .base import SkipRecord, open_image
from .spec import KINDS, parse_spec

ON_ERROR = ("raise", "skip")

# Loader names re-exported lazily (PEP 562) so the loader modules can import the helpers here.
_LAZY = {
    "load_coco_captions": "coco",
    "load_karpathy": "karpathy",
    "KARPATHY_SPLITS": "karpathy",
    "load_csv": "tabular",
    "load_image_folder": "folder",
    "ClassificationDataset": "folder",
    "LabelTruth": "folder",
    "load_fashion_mnist": "fashion_mnist",
    "fashion_mnist_available": "fashion_mnist",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __package__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class SkippedItemsWarning(UserWarning):
    """Emitted once per load when ``on_error="skip"`` left items out (see ``dataset.skipped``)."""


class IssueLog:
    """Collects per-item problems: raises them (``on_error="raise"``) or records skips."""

    def __init__(self, on_error: str, source: str | os.PathLike):
        if on_error not in ON_ERROR:
            raise VlmkitError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        self.on_error = on_error
        self.source = str(source)
        self.skipped: list[SkipRecord] = []
        self.n_problems = 0

    def problem(self, where: str, reason: str) -> None:
        """An item is bad: raise, or skip it and record why."""
        if self.on_error == "raise":
            raise VlmkitError(f"{where}: {reason} (pass on_error='skip' to leave such items out)")
        self.n_problems += 1
        self.skipped.append(SkipRecord(where=where, reason=reason))

    def note(self, where: str, reason: str) -> None:
        """An item left out by design (never an error); recorded, not warned about."""
        self.skipped.append(SkipRecord(where=where, reason=reason))

    def finish(self) -> list[SkipRecord]:
        if self.n_problems:
            first = self.skipped[0] if self.skipped else None
            warnings.warn(
                f"{self.source}: skipped {self.n_problems} bad item(s) (on_error='skip'); "
                f"first: {first.where}: {first.reason}; see dataset.skipped for all",
                SkippedItemsWarning,
                stacklevel=3,
            )
        return self.skipped


def require_file(path: str | os.PathLike, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise VlmkitError(f"{what} not found: {p}")
    if not p.is_file():
        raise VlmkitError(f"{what} is not a file: {p}")
    return p


def require_dir(path: str | os.PathLike, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise VlmkitError(f"{what} not found: {p}")
    if not p.is_dir():
        raise VlmkitError(f"{what} is not a folder: {p}")
    return p


def read_json(path: Path) -> Any:
    """Parse a JSON file; malformed JSON raises naming the file, line, column and char offset."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise VlmkitError(f"{path}: malformed JSON at line {exc.lineno} column {exc.colno} (char {exc.pos}): "
                          f"{exc.msg}") from None
    except UnicodeDecodeError as exc:
        raise VlmkitError(f"{path}: not UTF-8 text at byte {exc.start}: {exc.reason}") from None


def require_keys(record: Any, keys: tuple[str, ...], where: str) -> None:
    """``record`` must be a JSON object holding every key; the error names the first missing one."""
    if not isinstance(record, dict):
        raise VlmkitError(f"{where}: expected a JSON object, got {type(record).__name__}")
    for key in keys:
        if key not in record:
            raise VlmkitError(f"{where}: missing key {key!r} (found keys: {', '.join(map(repr, record)) or 'none'})")


def require_list(data: Any, key: str, path: Path, hint: str) -> list:
    if not isinstance(data, dict):
        raise VlmkitError(f"{path}: expected a JSON object at the top level, got {type(data).__name__} ({hint})")
    if key not in data:
        raise VlmkitError(f"{path}: missing top-level key {key!r} (found: {', '.join(map(repr, data)) or 'none'}; "
                          f"{hint})")
    if not isinstance(data[key], list):
        raise VlmkitError(f"{path}: top-level {key!r} must be a list, got {type(data[key]).__name__}")
    return data[key]


def caption_problem(value: Any) -> str | None:
    """Why ``value`` is not a usable caption, or ``None`` when it is."""
    if not isinstance(value, str):
        return f"caption is not a string: {value!r}"
    if not value.strip():
        return f"caption is empty: {value!r}"
    return None


def id_sort_key(value: Any) -> tuple:
    """Integers in numeric order first, then everything else as strings."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (0, value, "")
    return (1, 0, str(value))


def image_problem(path: Path, verify: bool) -> str | None:
    """Why the image at ``path`` cannot be used, or ``None`` (decodes it when ``verify``)."""
    if not path.is_file():
        return f"image file not found: {path}"
    if verify:
        try:
            open_image(path)
        except VlmkitError as exc:
            return str(exc)
    return None


# --------------------------------------------------------------------------- entry point

def load_dataset(spec: str | dict, *, pairs: bool = False, **kwargs: Any):
    """Load any dataset from one string or dict (handy as a papermill parameter).

    Strings are ``"kind"`` or ``"kind:part1:part2..."``; the parts fill these parameters:

    * ``"coco:ANNOTATIONS.json:IMAGE_DIR"`` → :func:`load_coco_captions`
    * ``"karpathy:dataset_coco.json:IMAGE_ROOT[:SPLIT]"`` → :func:`load_karpathy`
      (``SPLIT`` may be ``train+restval``)
    * ``"csv:FILE.csv[:IMAGE_ROOT]"`` (or ``tsv:``) → :func:`load_csv`
    * ``"folder:ROOT"`` → :func:`load_image_folder`
    * ``"fashion-mnist[:SPLIT[:ROOT]]"`` → :func:`load_fashion_mnist`
    * ``"shapes[:PRESET][:SPLIT]"`` → :func:`vlmkit.data.shapes.make_shapes`
    * ``"shape-classes[:DOMAIN[:SPLIT[:PER_CLASS[:CLASSES[:GRID[:SEED]]]]]]"`` →
      :func:`vlmkit.data.classification.load_shape_classes`

    (the grammar: :mod:`vlmkit.data.spec`, whose :func:`~vlmkit.data.spec.parse_spec` reads
    the string).

    A dict is ``{"kind": ..., **keyword arguments of that loader}``.  ``kwargs`` are passed
    on (they override the spec).  With ``pairs=True`` a :class:`ClassificationDataset` is
    returned as ``.as_pairs()`` so that every kind yields a :class:`PairDataset`.
    """
    if isinstance(spec, dict):
        params = dict(spec)
        kind = params.pop("kind", None)
        if kind is None:
            raise VlmkitError(f"dataset spec dict needs a 'kind' key (one of {', '.join(KINDS)}); got keys "
                              f"{list(spec)}")
        kind = str(kind).lower()
        if kind not in KINDS:
            raise VlmkitError(f"unknown dataset kind {kind!r} in spec {spec!r}; expected one of {', '.join(KINDS)}")
    elif isinstance(spec, str):
        parsed = parse_spec(spec)
        kind, params = parsed.kind, dict(parsed.params)
    else:
        raise VlmkitError(f"dataset spec must be a string or a dict, got {type(spec).__name__}")
    module_name, func_name, _ = KINDS[kind]
    if kind == "tsv":
        params.setdefault("sep", "\t")
    params.update(kwargs)
    import importlib
    import inspect

    func = getattr(importlib.import_module(f".{module_name}", __package__), func_name)
    try:
        inspect.signature(func).bind(**params)
    except TypeError as exc:  # an unknown or missing argument: say which loader wants what
        raise VlmkitError(f"dataset spec {spec!r}: {func_name}() {exc}; its parameters: "
                          f"{', '.join(inspect.signature(func).parameters)}") from None
    ds = func(**params)
    if pairs and hasattr(ds, "as_pairs"):
        ds = ds.as_pairs()
    return ds
