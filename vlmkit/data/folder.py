"""Classification datasets (an image folder of classes, Fashion-MNIST) and how they become pairs.

**Representation.**  A classification dataset is a :class:`ClassificationDataset`: the
N images, their labels (N,), the class names and the prompt templates.  It serves two
uses without pretending to be something else:

* zero-shot classification: :meth:`ClassificationDataset.class_prompts` gives the C
  prompts of one template (or :meth:`prompt_table` all C × T for prompt ensembling);
  compare each image with them and score against ``labels``;
* retrieval / modality-gap studies: :meth:`ClassificationDataset.as_pairs` gives a
  :class:`PairDataset` with **one caption per image** — its class prompt — so that
  ``caption_image[i] == i``, and a :class:`LabelTruth` that marks every same-class
  (image, caption) pair true.  Under the one-to-one labels every other same-class pair is
  a false negative (``ds.false_negatives()``), which is exactly what classification data
  looks like to a contrastive loss.  The truth is exact (``truth.exact``): a class prompt
  is true of an image iff the image has that class.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..utils import VlmkitError, fingerprint
from .base import FileImages, ImageSource, PairDataset, SkipRecord, Truth, _as_index
from .formats import IssueLog, image_problem, require_dir

DEFAULT_TEMPLATES = ("a photo of a {c}.",)
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm",
                              ".pbm"})


def fill_template(template: str, classname: str) -> str:
    """``"a photo of a {c}."`` → ``"a photo of a dog."`` (``{}`` works too)."""
    if "{c}" in template:
        return template.replace("{c}", classname)
    return template.replace("{}", classname)


def check_templates(templates: Sequence[str] | str | None) -> tuple[str, ...]:
    if templates is None:
        return DEFAULT_TEMPLATES
    if isinstance(templates, str):
        templates = (templates,)
    out = tuple(templates)
    if not out:
        raise VlmkitError("templates must hold at least one prompt template such as 'a photo of a {c}.'")
    for k, t in enumerate(out):
        if not isinstance(t, str) or ("{c}" not in t and "{}" not in t):
            raise VlmkitError(f"templates[{k}] = {t!r} must be a string with a '{{c}}' placeholder, e.g. 'a photo of a "
                              f"{{c}}.'")
    return out


class LabelTruth(Truth):
    """Exact truth of class prompts: caption ``j`` is true of image ``i`` iff their labels agree."""

    exact = True

    def __init__(self, image_labels: np.ndarray, caption_labels: np.ndarray):
        self.image_labels = np.asarray(image_labels, dtype=np.int64).reshape(-1)
        self.caption_labels = np.asarray(caption_labels, dtype=np.int64).reshape(-1)

    def positives(self, img_idx: np.ndarray, cap_idx: np.ndarray) -> np.ndarray:
        return self.image_labels[img_idx][:, None] == self.caption_labels[cap_idx][None, :]

    def subset(self, img_idx: np.ndarray, cap_idx: np.ndarray) -> "LabelTruth":
        return LabelTruth(self.image_labels[img_idx], self.caption_labels[cap_idx])

    def fingerprint(self) -> str:
        return fingerprint("labels", self.image_labels, self.caption_labels)


@dataclass
class ClassificationDataset:
    """N labelled images, C class names and T prompt templates (see the module docstring).

    Attributes:
        name: short name for tables and cache keys.
        images: the :class:`ImageSource`.
        labels: int64 (N,), class index of each image, in ``[0, C)``.
        classnames: the C class names used in prompts.
        templates: the prompt templates, each with a ``{c}`` placeholder.
        image_ids: N stable identifiers (relative path, index, …).
        skipped: what the loader left out and why.
    """

    name: str
    images: ImageSource
    labels: np.ndarray
    classnames: list[str]
    templates: tuple[str, ...] = DEFAULT_TEMPLATES
    image_ids: list[str] = field(default_factory=list)
    skipped: list[SkipRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        self.classnames = [str(c) for c in self.classnames]
        self.templates = check_templates(self.templates)
        n = len(self.images)
        if not self.image_ids:
            self.image_ids = [str(i) for i in range(n)]
        if len(self.labels) != n or len(self.image_ids) != n:
            raise VlmkitError(f"{self.name}: {len(self.labels)} labels and {len(self.image_ids)} image_ids for {n} "
                              "images")
        if not self.classnames:
            raise VlmkitError(f"{self.name}: no class names")
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.classnames)):
            raise VlmkitError(f"{self.name}: labels must lie in [0, {len(self.classnames)}), got "
                              f"{self.labels.min()}..{self.labels.max()}")

    @property
    def num_images(self) -> int:
        return len(self.images)

    @property
    def num_classes(self) -> int:
        return len(self.classnames)

    def __len__(self) -> int:
        return self.num_images

    def __repr__(self) -> str:
        return (f"ClassificationDataset({self.name!r}, images={self.num_images}, classes={self.num_classes}, "
                f"templates={len(self.templates)})")

    def load_image(self, i: int):
        return self.images.load(int(i))

    def class_counts(self) -> np.ndarray:
        """Images per class, int64 (C,)."""
        return np.bincount(self.labels, minlength=self.num_classes)

    def _template(self, template: int | str) -> str:
        if isinstance(template, int):
            if not -len(self.templates) <= template < len(self.templates):
                raise VlmkitError(f"{self.name}: template index {template} out of range; there are "
                                  f"{len(self.templates)} templates")
            return self.templates[template]
        return check_templates((template,))[0]

    def class_prompts(self, template: int | str = 0) -> list[str]:
        """The C prompts of one template (an index into ``templates`` or a template string)."""
        t = self._template(template)
        return [fill_template(t, c) for c in self.classnames]

    def prompt_table(self) -> list[list[str]]:
        """All prompts, C lists of T strings (average their embeddings for a prompt ensemble)."""
        return [[fill_template(t, c) for t in self.templates] for c in self.classnames]

    def subset(self, image_indices, name: str | None = None) -> "ClassificationDataset":
        ii = _as_index(np.asarray(image_indices), self.num_images)
        return ClassificationDataset(
            name=name or f"{self.name}[{len(ii)}]",
            images=self.images.subset(ii),
            labels=self.labels[ii],
            classnames=list(self.classnames),
            templates=self.templates,
            image_ids=[self.image_ids[i] for i in ii],
            skipped=list(self.skipped),
        )

    def as_pairs(self, template: int | str = 0, name: str | None = None) -> PairDataset:
        """One caption per image (its class prompt), with every same-class pair marked true.

        ``caption_image`` is ``arange(N)``; ``caption_meta["label"]`` and
        ``image_meta["label"]`` hold the labels; the truth is a :class:`LabelTruth`.
        """
        prompts = self.class_prompts(template)
        return PairDataset(
            name=name or f"{self.name}/pairs",
            images=self.images,
            captions=[prompts[c] for c in self.labels],
            caption_image=np.arange(self.num_images, dtype=np.int64),
            image_ids=list(self.image_ids),
            truth=LabelTruth(self.labels, self.labels),
            caption_meta={"label": self.labels.copy()},
            image_meta={"label": self.labels.copy()},
            skipped=list(self.skipped),
        )

    def fingerprint(self) -> str:
        return fingerprint(self.images.fingerprint(), self.labels, self.classnames, list(self.templates))


def _classnames(folders: list[str], classnames: Sequence[str] | Mapping[str, str] | None, root: Path) -> list[str]:
    if classnames is None:
        return [f.replace("_", " ") for f in folders]
    if isinstance(classnames, Mapping):
        missing = [f for f in folders if f not in classnames]
        if missing:
            raise VlmkitError(f"{root}: classnames has no entry for class folder(s) {missing}")
        return [str(classnames[f]) for f in folders]
    names = [str(c) for c in classnames]
    if len(names) != len(folders):
        raise VlmkitError(f"{root}: {len(names)} classnames given for {len(folders)} class folders {folders}")
    return names


def load_image_folder(
    root: str | os.PathLike,
    templates: Sequence[str] | str | None = None,
    classnames: Sequence[str] | Mapping[str, str] | None = None,
    *,
    on_error: str = "raise",
    verify_images: bool = False,
    name: str | None = None,
) -> ClassificationDataset:
    """Load ``root/<class>/**/<image>`` as a :class:`ClassificationDataset`.

    Classes are the sub-folders of ``root`` in sorted order (like torchvision's
    ``ImageFolder``); images are searched recursively inside each and sorted by path.
    ``classnames`` is a list (in sorted-folder order) or a ``{folder: name}`` dict; by
    default the folder name with ``_`` read as a space.  ``templates`` default to
    ``("a photo of a {c}.",)``.  ``image_ids`` are the paths relative to ``root``.

    Hidden files and folders (``.name``) are ignored.  Files without an image extension
    (``.jpg .jpeg .png .bmp .gif .webp .tif .tiff .ppm .pgm .pbm``) and files directly in
    ``root`` are left out and recorded in ``skipped``.  Errors: a missing ``root``, no
    class folder, no image at all; per image (``on_error``), with ``verify_images=True``,
    an image that does not decode.  Without verification, a bad image raises a
    ``VlmkitError`` naming it when it is loaded.  An empty class folder is kept as a
    class with no images.
    """
    base = require_dir(root, "image folder")
    log = IssueLog(on_error, base)
    tpl = check_templates(templates)
    entries = sorted(p for p in base.iterdir() if not p.name.startswith("."))
    folders = [p.name for p in entries if p.is_dir()]
    for p in entries:
        if not p.is_dir():
            log.note(str(p), "file directly in the root folder, not inside a class folder; left out")
    if not folders:
        raise VlmkitError(f"{base}: no class sub-folders found; expected root/<class name>/<image files>")
    names = _classnames(folders, classnames, base)
    paths: list[str] = []
    labels: list[int] = []
    for c, folder in enumerate(folders):
        for dirpath, dirnames, filenames in os.walk(base / folder):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for fn in sorted(filenames):
                if fn.startswith("."):
                    continue
                p = Path(dirpath) / fn
                rel = p.relative_to(base).as_posix()
                if p.suffix.lower() not in IMAGE_EXTENSIONS:
                    log.note(str(p), f"not an image file extension ({p.suffix or 'none'}); left out")
                    continue
                bad = image_problem(p, verify_images)
                if bad:
                    log.problem(str(p), bad)
                    continue
                paths.append(rel)
                labels.append(c)
    if not paths:
        raise VlmkitError(f"{base}: no image files in the class folders {folders} (skipped {len(log.skipped)} file(s))")
    return ClassificationDataset(
        name=name or f"folder/{base.name}",
        images=FileImages(paths, root=base),
        labels=np.asarray(labels, dtype=np.int64),
        classnames=names,
        templates=tpl,
        image_ids=paths,
        skipped=log.finish(),
    )
