"""Block-streamed statistics of a score matrix (issue 22, point 1): the per-pair-type histogram
and the top-k selection equal their whole-matrix references (np.histogram over each pair type,
a stable argsort of every selected pair) for any block size, ties and NaN included."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vlmkit import viz
from vlmkit.data.shapes import make_shapes
from vlmkit.metrics.streaming import pair_code_matrix, pair_type_histogram, row_blocks, score_range, top_pairs
from vlmkit.utils import VlmkitError


@pytest.fixture(scope="module")
def ds():
    d = make_shapes("test", n_images=13, seed=5, preset="stress")  # false negatives aplenty
    assert (d.positives() & ~d.labels()).any()
    return d


@pytest.mark.parametrize("block_rows", [None, 1, 4, 13, 50])
def test_pair_type_histogram_equals_np_histogram_per_type(ds, block_rows):
    rng = np.random.default_rng(0)
    S = rng.normal(size=(ds.num_images, ds.num_captions)).astype(np.float32)
    S[0, 0] = S.max() + 1  # the top edge lands in the last (closed) bin
    hist = pair_type_histogram(torch.from_numpy(S), ds, bins=17, block_rows=block_rows)
    t = viz.pair_types(ds.labels(), ds.positives())
    edges = np.linspace(S.min(), S.max(), 18)
    assert np.allclose(hist.edges, edges)
    for k in range(3):
        ref, _ = np.histogram(S[t == k].astype(np.float64), bins=hist.edges)
        assert hist.counts[k].tolist() == ref.tolist()
        assert hist.n[k] == (t == k).sum()
        assert hist.means[k] == pytest.approx(S[t == k].astype(np.float64).mean(), rel=1e-12)
    assert hist.counts.sum() == S.size
    for k in range(3):
        assert (hist.density(k) * np.diff(hist.edges)).sum() == pytest.approx(1.0)
    codes = pair_code_matrix(ds, block_rows=5)
    L, P = ds.labels(), ds.positives()
    assert codes.dtype == np.int8
    assert np.array_equal(codes, np.where(L, np.where(P, 0, 3), np.where(P, 1, 2)))
    again = pair_type_histogram(S, ds, bins=17, block_rows=block_rows, codes=codes)
    assert np.array_equal(again.counts, hist.counts) and np.array_equal(again.n, hist.n)
    fig = viz.pair_type_histogram_figure(hist)
    assert [tr.name.split(" (")[0] for tr in fig.data] == ["positive", "false negative", "true negative"]
    assert [int(np.sum(tr.customdata)) for tr in fig.data] == hist.n.tolist()


def test_non_finite_scores_are_counted_but_not_binned(ds):
    S = np.zeros((ds.num_images, ds.num_captions))
    S[1, 2], S[3, 4] = np.nan, np.inf
    S[5, :] = 1.0
    hist = pair_type_histogram(S, ds, bins=4, block_rows=3)
    assert hist.n.sum() == S.size and hist.counts.sum() == S.size - 2
    assert score_range(S, block_rows=2) == (0.0, 1.0)
    with pytest.raises(VlmkitError, match="shape"):
        pair_type_histogram(S[:-1], ds)


@pytest.mark.parametrize("block_rows", [1, 3, 7, None])
@pytest.mark.parametrize("k", [0, 1, 5, 40, 10_000])
def test_top_pairs_equal_a_stable_argsort_of_every_selected_pair(block_rows, k):
    rng = np.random.default_rng(k)
    key = rng.integers(0, 6, size=(11, 9)).astype(np.float64)  # many ties
    key[2, 3] = np.nan
    sel = rng.random((11, 9)) < 0.6
    idx = np.flatnonzero(sel.ravel())
    ref = idx[np.argsort(-key.ravel()[idx], kind="stable")][:k]
    got, total = top_pairs(key, lambda r: sel[r], k, block_rows=block_rows)
    assert got.tolist() == ref.tolist() and total == len(idx)


def test_row_blocks_cover_the_rows():
    assert [(s.start, s.stop) for s in row_blocks(10, 3, 4)] == [(0, 4), (4, 8), (8, 10)]
    assert [(s.start, s.stop) for s in row_blocks(2, 1 << 30)] == [(0, 1), (1, 2)]
    with pytest.raises(VlmkitError):
        list(row_blocks(3, 3, 0))


def test_gallery_selection_is_the_same_with_precomputed_codes(ds):
    from vlmkit.viz import gallery as G

    rng = np.random.default_rng(1)
    S = np.round(rng.normal(size=(ds.num_images, ds.num_captions)), 1).astype(np.float32)  # ties
    U = np.round(rng.random((ds.num_images, ds.num_captions)), 2)
    codes = pair_code_matrix(ds)
    for unc in (U, None):
        a = G.false_negative_table(ds, S, unc, n=9, n_contrast=5)
        b = G.false_negative_table(ds, torch.from_numpy(S), unc, n=9, n_contrast=5, codes=codes)
        assert a.equals(b)
        # the reference: a stable argsort of every selected pair of the dense matrices
        key = (S if unc is None else unc).astype(np.float64).ravel()
        P, L = ds.positives(), ds.labels()
        for kind, mask, k in (("false negative", P & ~L, 9), ("true negative", ~P, 5)):
            idx = np.flatnonzero(mask.ravel())
            ref = idx[np.argsort(-key[idx], kind="stable")[:k]]
            got = a[a.kind == kind]
            assert (got.image * ds.num_captions + got.caption).tolist() == ref.tolist()
            assert (got.total == len(idx)).all()
    with pytest.raises(VlmkitError, match="codes: shape"):
        G.false_negative_table(ds, S, None, codes=codes[:-1])
