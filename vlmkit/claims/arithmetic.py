"""Claim 12: embedding arithmetic scored against the generator's exact truth (SIMAT-style).

For an image holding a shape ``s`` in colour ``c₁``, the query is
``q = v + λ · (t("a c₂ s") − t("a c₁ s"))`` (SIMAT / m²-Mix §5.6: image embedding plus a text
delta), and the top-1 of the *other* images by cosine to ``q`` is correct when the generator
says it truly holds an ``s`` in colour ``c₂`` (any size, any position) — under the metrics' one
tie rule: a right image tied with a wrong one is a miss. Queries: every
(image, object, target colour c₂ ≠ c₁) where the image does not already hold a ``c₂ s`` and some
other image does; a seeded sample of at most ``max_queries``. Reported beside the accuracy: the
chance rate (the share of other images that hold a ``c₂ s``, averaged over queries) and the
control accuracy of the unedited image (λ = 0). With ``sweep``, also the accuracy at every λ of
the sweep and its best — the m²-Mix authors' SIMAT evaluation reports the best λ over
0.5, 1, 1.5, …, 6, 7 (``SIMAT_eval`` in changdaeoh/multimodal-mixup ``main.py``).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..data.shapes import COLOURS, SHAPES
from ..utils import VlmkitError, as_tensor


def phrase(colour: int, shape: int) -> str:
    """The caption grammar's clause for one object without size or position: ``"a red circle"``."""
    words = f"{COLOURS[colour]} {SHAPES[shape]}"
    return ("an " if words[0] in "aeiou" else "a ") + words


def edit_queries(objs: np.ndarray, max_queries: int | None = None, seed: int = 0) -> np.ndarray:
    """(Q, 4) int64 rows ``image, shape, source colour, target colour`` (module docstring)."""
    objs = np.asarray(objs)
    if objs.ndim != 3 or objs.shape[-1] < 2:
        raise VlmkitError(f"objs: expected (images, objects, attributes) with shape and colour first, got {objs.shape}")
    present = objs[:, :, 0] >= 0
    n_shapes, n_colours = int(objs[..., 0].max()) + 1, int(objs[..., 1].max()) + 1
    holds = np.zeros((len(objs), n_shapes, n_colours), dtype=bool)
    for o in range(objs.shape[1]):
        i = np.flatnonzero(present[:, o])
        holds[i, objs[i, o, 0], objs[i, o, 1]] = True
    count = holds.sum(0)  # images holding each (shape, colour)
    rows = []
    for i, s, c1 in zip(*np.nonzero(holds)):
        for c2 in range(n_colours):
            if c2 != c1 and not holds[i, s, c2] and count[s, c2] > 0:
                rows.append((i, s, c1, c2))
    q = np.asarray(rows, dtype=np.int64).reshape(-1, 4)
    if max_queries is not None and len(q) > max_queries:
        q = q[np.sort(np.random.default_rng(seed).choice(len(q), max_queries, replace=False))]
    return q


def holds_object(objs: np.ndarray, shape: int, colour: int) -> np.ndarray:
    """(N,) bool: which images hold an object of ``shape`` in ``colour``."""
    o = np.asarray(objs)
    return ((o[:, :, 0] == shape) & (o[:, :, 1] == colour)).any(axis=1)


def embedding_arithmetic(img_feats: Any, objs: np.ndarray, encode_text: Callable[[list[str]], torch.Tensor], *,
                         lam: float = 1.0, max_queries: int | None = 2000, seed: int = 0,
                         sweep: Sequence[float] = ()) -> dict[str, Any]:
    """``{accuracy, chance, control_accuracy, n_queries}`` (fractions) of the text-delta edit
    (module docstring). ``encode_text(list of str) -> (n, d)`` gives the text embeddings. With a
    ``sweep`` of λ values also ``sweep`` ({str(λ): accuracy}), ``best_accuracy`` and ``best_lambda``
    (the first λ reaching the best) on the same queries."""
    x = F.normalize(as_tensor(img_feats, "img_feats").double().cpu(), dim=-1)
    objs = np.asarray(objs)
    if len(objs) != len(x):
        raise VlmkitError(f"objs: {len(objs)} scenes for {len(x)} image features")
    q = edit_queries(objs, max_queries, seed)
    if len(q) == 0:
        raise VlmkitError("embedding_arithmetic: no edit query "
                          "(no image holds an object whose recoloured twin exists elsewhere)")
    pairs = sorted({(int(s), int(c)) for _, s, c1, c2 in q for c in (c1, c2)})
    index = {p: k for k, p in enumerate(pairs)}
    t = F.normalize(as_tensor(encode_text([phrase(c, s) for s, c in pairs]), "text features").double().cpu(), dim=-1)
    src = t[[index[(int(s), int(c1))] for _, s, c1, _ in q]]
    dst = t[[index[(int(s), int(c2))] for _, s, _, c2 in q]]
    img = torch.as_tensor(q[:, 0])
    # which candidates are right: they hold the recoloured object (the query image is no candidate)
    right = np.stack([holds_object(objs, s, c2) for _, s, _, c2 in q])
    right[np.arange(len(q)), q[:, 0]] = False
    wrong = ~right
    wrong[np.arange(len(q)), q[:, 0]] = False
    def accuracy(lam_used: float) -> float:
        sims = (F.normalize(x[img] + lam_used * (dst - src), dim=-1) @ x.T).numpy()
        # top-1 under the metrics' one tie rule (pessimistic): a hit needs a right candidate
        # scoring strictly above every wrong one
        best_right = np.where(right, sims, -np.inf).max(axis=1)
        best_wrong = np.where(wrong, sims, -np.inf).max(axis=1)
        return float(np.mean(best_right > best_wrong))

    chance = right.sum(axis=1) / (len(objs) - 1)
    out: dict[str, Any] = {"accuracy": accuracy(float(lam)), "chance": float(np.mean(chance)),
                           "control_accuracy": accuracy(0.0),
                           "n_queries": int(len(q))}
    if len(sweep):
        acc = {f"{float(v):g}": accuracy(float(v)) for v in sweep}
        best = max(acc, key=acc.get)  # the first λ with the highest accuracy (dicts keep the sweep's order)
        out.update(sweep=acc, best_accuracy=acc[best], best_lambda=float(best))
    return out


def text_encoder(loaded: Any, batch_size: int = 256) -> Callable[[Sequence[str]], torch.Tensor]:
    """``encode_text(texts) -> (n, d)`` unit text embeddings of a :class:`~vlmkit.models.LoadedModel`."""

    @torch.no_grad()
    def encode(texts: Sequence[str]) -> torch.Tensor:
        model = loaded.model
        was = model.training
        model.eval()
        out = []
        for s in range(0, len(texts), batch_size):
            tok = loaded.tokenizer(list(texts[s:s + batch_size])).to(loaded.device)
            out.append(F.normalize(model.encode_text(tok).float(), dim=-1).cpu())
        model.train(was)
        return torch.cat(out)

    return encode
