"""The dataset-spec grammar: one parser for every ``"kind:part:part"`` string vlmkit accepts.

A spec string is ``kind`` followed by up to a kind's number of ``:``-separated parts:

* ``"shapes[:PRESET][:SPLIT]"`` — the embedded generator (:func:`vlmkit.data.shapes.make_shapes`).
  Each part is a preset name (``coco``, the default, or ``stress``) or a split name
  (``pretrain``, ``train``, ``val``, ``test``), in either order, each at most once.  So
  ``"shapes:stress"`` is the stress regime, ``"shapes:val"`` the coco validation split and
  ``"shapes:stress:val"`` both.  A caller that picks the split itself (the workbook's test
  data, fine-tuning's train/val splits) takes the preset and rejects a spec naming another split.
* ``"coco:ANNOTATIONS.json:IMAGE_DIR"``, ``"karpathy:dataset_coco.json:IMAGE_ROOT[:SPLIT]"``,
  ``"csv:FILE.csv[:IMAGE_ROOT]"`` (or ``tsv:``), ``"folder:ROOT"``,
  ``"fashion-mnist[:SPLIT[:ROOT]]"`` — the real-data loaders; the parts fill the loader's
  parameters named in :data:`KINDS`.
* ``"shape-classes[:DOMAIN[:SPLIT[:PER_CLASS[:CLASSES[:GRID[:SEED]]]]]]"`` — the embedded
  classification data of the generalisation claims (:func:`vlmkit.data.classification.load_shape_classes`).

:func:`parse_spec` returns a :class:`DataSpec`; :func:`vlmkit.data.load_dataset`,
:mod:`vlmkit.selection` and :func:`vlmkit.train.load_splits` all read specs through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..utils import VlmkitError

EMBEDDED = "shapes"
"""The kind of the embedded generator."""
DEFAULT_PRESET = "coco"

# kind -> (module of vlmkit.data, loader function, names of the positional parts of a "kind:a:b" spec)
KINDS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "coco": ("coco", "load_coco_captions", ("annotation_json", "image_dir")),
    "karpathy": ("karpathy", "load_karpathy", ("json_path", "image_root", "split")),
    "csv": ("tabular", "load_csv", ("path", "image_root")),
    "tsv": ("tabular", "load_csv", ("path", "image_root")),
    "folder": ("folder", "load_image_folder", ("root",)),
    "fashion-mnist": ("fashion_mnist", "load_fashion_mnist", ("split", "root")),
    EMBEDDED: ("shapes", "make_shapes", ("preset", "split")),  # parts recognised by name, see parse_spec
    "shape-classes": ("classification", "load_shape_classes", ("domain", "split", "per_class", "classes", "grid",
                                                               "seed")),
}


@dataclass(frozen=True)
class DataSpec:
    """One parsed spec: its ``kind`` and the loader keyword arguments its parts name
    (``params``; for ``shapes`` at most ``preset`` and ``split``)."""

    text: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def embedded(self) -> bool:
        """Whether the spec names the embedded generator."""
        return self.kind == EMBEDDED

    @property
    def preset(self) -> str | None:
        """The embedded data regime (``coco`` unless the spec names another); None for real data."""
        return self.params.get("preset", DEFAULT_PRESET) if self.embedded else None

    @property
    def split(self) -> str | None:
        """The split the spec names, or None when it leaves it to the caller."""
        return self.params.get("split")

    def embedded_preset(self, what: str, split: str | None = None) -> str:
        """The preset of an embedded spec whose split the caller chooses (``split``, or several
        when None): a spec naming another split raises a ``VlmkitError`` that names ``what``."""
        if not self.embedded:
            raise VlmkitError(f"{what}={self.text!r}: not an embedded-data spec ('shapes' or 'shapes:PRESET')")
        if self.split is not None and self.split != split:
            chosen = f"the {split} split" if split else "its own splits"
            raise VlmkitError(f"{what}={self.text!r} names the split {self.split!r}, but {what} uses {chosen}; "
                              f"give 'shapes' or 'shapes:PRESET' (presets: {', '.join(_presets())})")
        return self.params.get("preset", DEFAULT_PRESET)


def _presets() -> list[str]:
    from .shapes import PRESETS

    return sorted(PRESETS)


def _splits() -> list[str]:
    from .shapes import SPLITS

    return list(SPLITS)


def parse_spec(spec: str) -> DataSpec:
    """Parse a spec string (grammar in the module docstring); an unknown kind, too many parts
    or an unknown ``shapes`` part raises a ``VlmkitError`` naming the spec and what was expected."""
    if not isinstance(spec, str) or not spec:
        raise VlmkitError(f"dataset spec must be a non-empty string, got {spec!r}")
    kind, *parts = spec.split(":")
    kind = kind.lower()
    if kind not in KINDS:
        raise VlmkitError(f"unknown dataset kind {kind!r} in spec {spec!r}; expected one of {', '.join(KINDS)}")
    if kind == EMBEDDED:
        return DataSpec(spec, kind, _shapes_params(spec, parts))
    names = KINDS[kind][2]
    if len(parts) > len(names):
        raise VlmkitError(f"dataset spec {spec!r}: {kind!r} takes at most {len(names)} part(s) after the kind "
                          f"({':'.join(names)}), got {len(parts)}")
    return DataSpec(spec, kind, {n: p for n, p in zip(names, parts) if p != ""})


def _shapes_params(spec: str, parts: list[str]) -> dict[str, str]:
    presets, splits = _presets(), _splits()
    params: dict[str, str] = {}
    for part in parts:
        if part == "":
            continue
        key = "preset" if part in presets else "split" if part in splits else None
        if key is None:
            raise VlmkitError(f"dataset spec {spec!r}: {part!r} is neither a shapes preset ({', '.join(presets)}) "
                              f"nor a split ({', '.join(splits)})")
        if key in params:
            raise VlmkitError(f"dataset spec {spec!r} names two {key}s ({params[key]!r} and {part!r})")
        params[key] = part
    return params
