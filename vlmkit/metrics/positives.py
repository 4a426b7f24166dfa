"""Which gallery items are relevant to each query: :class:`Positives`, read in row blocks.

Three sources, one interface (``block(a, b)`` → bool tensor, ``counts()``, ``.T``, ``subset``):

* **one-to-one labels** from ``caption_image`` (the COCO protocol: an image's positives are the
  captions written for it; a caption's single positive is its image) — never materialised;
* a **matrix** of extended positives (dense bool N × M, or SciPy sparse), e.g.
  ``PairDataset.positives()`` on the embedded data (exact truth) or ECCV Caption / CxC;
* a **JSON mapping** query id → list of positive ids (:meth:`Positives.from_json`), the form in
  which ECCV Caption and CxC ship their annotations.  Ids are compared as strings; an id that
  is not among the given query or gallery ids raises an error naming it.

Orientation follows the scores: rows = queries.  For image→text the matrix is N × M; ``.T`` is
the text→image relation (M × N).
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from ..utils import VlmkitError, as_tensor, read_positives_json


class Positives:
    """A boolean queries × gallery relevance relation."""

    def __init__(self, shape: tuple[int, int], *, caption_image: torch.Tensor | None = None,
                 matrix: Any = None, transposed: bool = False, kind: str = "matrix"):
        self._ci = caption_image  # one-to-one: int64 (M,), -1 = no image in this subset
        self._mat = matrix        # torch bool (N, M) or scipy csr (N, M), in the un-transposed orientation
        self._transposed = transposed
        self.kind = kind          # "one-to-one" | "matrix" | "json"
        self.shape = tuple(shape)

    # -- construction
    @classmethod
    def from_caption_image(cls, caption_image: Any, n_images: int | None = None) -> "Positives":
        """Image→text one-to-one labels: image ``i``'s positives are captions with ``caption_image == i``."""
        ci = as_tensor(caption_image, "caption_image").reshape(-1)
        if ci.is_floating_point() or ci.dtype == torch.bool:
            raise VlmkitError(f"caption_image: expected integer image indices, got dtype {ci.dtype}")
        ci = ci.long().cpu()
        n = int(ci.max()) + 1 if n_images is None and len(ci) else int(n_images or 0)
        if len(ci) and (int(ci.min()) < 0 or int(ci.max()) >= n):
            bad = int(((ci < 0) | (ci >= n)).nonzero()[0])
            raise VlmkitError(f"caption_image: caption {bad} points at image {int(ci[bad])}, "
                              f"but the gallery has {n} images")
        return cls((n, len(ci)), caption_image=ci, kind="one-to-one")

    @classmethod
    def from_matrix(cls, matrix: Any) -> "Positives":
        """Extended positives as a bool matrix (queries × gallery): dense (torch/NumPy) or SciPy sparse."""
        if sp.issparse(matrix):
            m = sp.csr_matrix(matrix, dtype=bool)
        else:
            m = as_tensor(matrix, "positives")
            if m.ndim != 2:
                raise VlmkitError(f"positives: expected a 2-D bool matrix, got shape {tuple(m.shape)}")
            if m.dtype != torch.bool:
                if m.is_floating_point() and not bool(((m == 0) | (m == 1)).all()):
                    raise VlmkitError("positives: expected booleans (or 0/1), got other values")
                m = m != 0
        return cls(tuple(m.shape), matrix=m, kind="matrix")

    @classmethod
    def from_dataset(cls, dataset: Any, extended: bool = True) -> "Positives":
        """Image→text positives of a :class:`~vlmkit.data.base.PairDataset`.

        ``extended=True`` uses ``dataset.positives()`` (labels ∪ extended truth); ``False`` the
        one-to-one labels only.
        """
        if not extended or dataset.truth is None:
            return cls.from_caption_image(dataset.caption_image, dataset.num_images)
        return cls.from_matrix(np.asarray(dataset.positives(), dtype=bool))

    @classmethod
    def from_json(cls, mapping: Mapping[str, Sequence] | str | os.PathLike, query_ids: Sequence,
                  gallery_ids: Sequence) -> "Positives":
        """Positives from ``{query id: [positive gallery ids]}`` (ECCV Caption / CxC JSON).

        Rows follow ``query_ids``; queries absent from the mapping get no positives (ranking
        metrics then skip or reject them, see ``empty=``).  Unknown ids raise an error.
        """
        mapping, where = read_positives_json(mapping, "positives file")
        qpos = _id_index(query_ids, "query_ids")
        gpos = _id_index(gallery_ids, "gallery_ids")
        rows, cols = [], []
        for q, pos in mapping.items():
            if str(q) not in qpos:
                raise VlmkitError(f"{where}: query id {q!r} is not among the {len(qpos)} query ids")
            if isinstance(pos, (str, bytes)) or not isinstance(pos, Sequence):
                raise VlmkitError(f"{where}: positives of query {q!r} must be a list, got {type(pos).__name__}")
            for p in pos:
                if str(p) not in gpos:
                    raise VlmkitError(f"{where}: positive id {p!r} of query {q!r} is not in the gallery")
                rows.append(qpos[str(q)])
                cols.append(gpos[str(p)])
        m = sp.csr_matrix((np.ones(len(rows), bool), (rows, cols)), shape=(len(qpos), len(gpos)), dtype=bool)
        out = cls.from_matrix(m)
        out.kind = "json"
        return out

    # -- views
    @property
    def T(self) -> "Positives":  # noqa: N802
        out = Positives(self.shape[::-1], caption_image=self._ci, matrix=self._mat,
                        transposed=not self._transposed, kind=self.kind)
        return out

    def block(self, start: int, stop: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """Rows ``[start, stop)`` as a bool tensor (stop − start, gallery) on ``device``."""
        if self._ci is not None:
            ci = self._ci.to(device)
            if not self._transposed:  # images × captions
                return torch.arange(start, stop, device=device)[:, None] == ci[None, :]
            n = self.shape[1]
            return ci[start:stop, None] == torch.arange(n, device=device)[None, :]
        m = self._mat
        if isinstance(m, torch.Tensor):
            blk = m[:, start:stop].T if self._transposed else m[start:stop]
            return blk.to(device)
        blk = (m[:, start:stop].T if self._transposed else m[start:stop]).toarray()
        return torch.from_numpy(blk).to(device)

    def counts(self) -> np.ndarray:
        """Number of positives of every query (int64, one per row of this view)."""
        if self._ci is not None:
            if self._transposed:
                return (self._ci >= 0).long().numpy()
            valid = self._ci[self._ci >= 0]
            return torch.bincount(valid, minlength=self.shape[0]).numpy().astype(np.int64)
        m = self._mat
        axis = 0 if self._transposed else 1
        if isinstance(m, torch.Tensor):
            return m.sum(dim=axis).cpu().numpy().astype(np.int64)
        return np.asarray(m.getnnz(axis=axis), dtype=np.int64)

    def subset(self, rows: Any, cols: Any) -> "Positives":
        """Query ``rows`` × gallery ``cols`` of this view."""
        r = as_tensor(rows, "rows").long().cpu()
        c = as_tensor(cols, "cols").long().cpu()
        if self._transposed:
            return self.T.subset(c, r).T
        if self._ci is not None:
            remap = torch.full((self.shape[0],), -1, dtype=torch.long)
            remap[r] = torch.arange(len(r))
            ci = self._ci[c]
            new = torch.where(ci >= 0, remap[ci.clamp_min(0)], ci)
            return Positives((len(r), len(c)), caption_image=new, kind=self.kind)
        m = self._mat
        if isinstance(m, torch.Tensor):
            sub = m[r.to(m.device)][:, c.to(m.device)]
        else:
            sub = m[r.numpy()][:, c.numpy()]
        return Positives((len(r), len(c)), matrix=sub, kind=self.kind)

    def dense(self) -> torch.Tensor:
        """The whole relation as a dense bool tensor (small inputs / tests only)."""
        return self.block(0, self.shape[0])


def as_positives(x: Any, shape: tuple[int, int]) -> Positives:
    """Accept a :class:`Positives` or a bool matrix, and check it matches the scores' ``shape``."""
    pos = x if isinstance(x, Positives) else Positives.from_matrix(x)
    if tuple(pos.shape) != tuple(shape):
        raise VlmkitError(f"positives: shape {tuple(pos.shape)} does not match the scores' shape {tuple(shape)}")
    return pos


def _id_index(ids: Sequence, name: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for i, x in enumerate(ids):
        k = str(x)
        if k in out:
            raise VlmkitError(f"{name}: id {x!r} appears twice (rows {out[k]} and {i})")
        out[k] = i
    return out
