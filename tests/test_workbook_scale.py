"""Issue 22 at COCO-5K size: block-written VACSR matrices and the streamed statistics of the
notebooks equal the dense computation they replace (brute force on small cases)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vlmkit import analysis
from vlmkit import workbook as wb
from vlmkit.metrics import bidirectional_recall
from vlmkit.utils import NpyRowWriter, ReleasingMemmap, VlmkitError
from vlmkit.vacsr import VACSRConfig, scoring
from vlmkit.vacsr.adapter import VACSRAdapter
from vlmkit.vacsr.scoring import score_all


def _adapter(seed: int = 0, dim: int = 8) -> VACSRAdapter:
    torch.manual_seed(seed)
    a = VACSRAdapter(VACSRConfig(dim=dim, enc_hidden=(16,), latent_dim=4, dec_hidden=(16,)))
    with torch.no_grad():  # a non-trivial network: spread the weights so scores differ per pair
        for p in a.parameters():
            p.normal_(0, 0.5)
    return a.eval()


def _feats(n: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=-1)


# ----------------------------------------------------------------------------- NpyRowWriter
def test_row_writer_writes_an_npy_that_numpy_reads_back(tmp_path):
    x = np.arange(7 * 5, dtype=np.float32).reshape(7, 5) / 3
    with NpyRowWriter(tmp_path / "m.npy", (7, 5)) as w:
        w[0:3] = x[:3]
        w[3:4] = x[3:4]
        w[4:7] = x[4:].astype(np.float64)  # converted to the file's dtype
    got = np.load(tmp_path / "m.npy")
    assert got.dtype == np.float32 and np.array_equal(got, x)
    assert np.array_equal(np.load(tmp_path / "m.npy", mmap_mode="r"), x)
    assert list(tmp_path.iterdir()) == [tmp_path / "m.npy"]  # no temporary file left
    assert wb.NpyRowWriter is NpyRowWriter and wb.ReleasingMemmap is ReleasingMemmap  # the workbook's names still work


def test_row_writer_refuses_out_of_order_or_misshapen_rows_and_leaves_no_partial_file(tmp_path):
    path = tmp_path / "m.npy"
    w = NpyRowWriter(path, (4, 3))
    w[0:2] = np.zeros((2, 3))
    with pytest.raises(VlmkitError, match="the next is row 2, got rows from 3"):
        w[3:4] = np.zeros((1, 3))
    with pytest.raises(VlmkitError, match=r"need shape \(2, 3\)"):
        w[2:4] = np.zeros((2, 2))
    with pytest.raises(VlmkitError, match="closed after 2 of 4 rows"):
        w.close()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ZeroDivisionError):
        with NpyRowWriter(path, (2, 3)) as w:
            w[0:1] = np.ones((1, 3))
            1 / 0
    assert list(tmp_path.iterdir()) == []  # an exception discards the file


# ------------------------------------------------------------------- score_all(out=...)
@pytest.mark.parametrize("chunk,out_block", [(None, 1 << 22), (7, 1 << 22), (5, 40), (64, 30), (1000, 1)])
def test_score_all_into_row_writers_equals_the_returned_matrices(tmp_path, monkeypatch, chunk, out_block):
    a = _adapter()
    v, t = _feats(9, 8, 1), _feats(13, 8, 2)
    ref_s, ref_u = score_all(a, v, t, chunk_size=chunk, device="cpu", show_progress=False)
    monkeypatch.setattr(scoring, "OUT_BLOCK_ELEMENTS", out_block)  # several row blocks handed to out
    with NpyRowWriter(tmp_path / "s.npy", (9, 13)) as s, NpyRowWriter(tmp_path / "u.npy", (9, 13)) as u:
        assert score_all(a, v, t, chunk_size=chunk, device="cpu", show_progress=False, out=(s, u)) == (s, u)
    assert np.array_equal(np.load(tmp_path / "s.npy"), ref_s.numpy())
    assert np.array_equal(np.load(tmp_path / "u.npy"), ref_u.numpy())
    assert float(ref_s.std()) > 1e-3 and float(ref_u.std()) > 1e-6  # a network whose pairs differ


def test_score_all_default_block_and_any_block_give_the_same_numbers():
    """The CPU default (4,096 pairs) against the former 2^18: on the workbook's adapter (d = 128,
    widths 256) every pair gets the same float32 value; a tiny adapter may differ in the last bit
    (another GEMM kernel for other shapes), never more."""
    torch.manual_seed(0)
    a = VACSRAdapter(VACSRConfig(dim=128)).eval()
    v, t = _feats(21, 128, 3), _feats(700, 128, 4)
    ref = score_all(a, v, t, chunk_size=1 << 18, device="cpu", show_progress=False)
    for chunk in (None, 512, 700, 4096):
        got = score_all(a, v, t, chunk_size=chunk, device="cpu", show_progress=False)
        assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1])
    tiny = _adapter(3, dim=16)
    v, t = _feats(21, 16, 3), _feats(700, 16, 4)
    ref = score_all(tiny, v, t, chunk_size=1 << 18, device="cpu", show_progress=False)
    got = score_all(tiny, v, t, device="cpu", show_progress=False)
    torch.testing.assert_close(got[0], ref[0], rtol=2.5e-7, atol=0)
    torch.testing.assert_close(got[1], ref[1], rtol=2.5e-7, atol=0)
    assert scoring.default_chunk_size(torch.device("cpu")) == 4096
    assert scoring.default_chunk_size(torch.device("cuda")) == 1 << 18


def test_score_all_out_with_prob_topk_and_arrays(tmp_path):
    a = _adapter(1)
    v, t = _feats(6, 8, 5), _feats(10, 8, 6)
    ps, pu = score_all(a, v, t, chunk_size=4, device="cpu", show_progress=False, prob=True)
    s, u = np.empty((6, 10), np.float32), np.empty((6, 10), np.float32)
    score_all(a, v, t, chunk_size=4, device="cpu", show_progress=False, prob=True, out=(s, u))
    assert np.array_equal(s, ps.numpy()) and np.array_equal(u, pu.numpy())
    ks, ku = score_all(a, v, t, chunk_size=4, device="cpu", show_progress=False, topk=2)
    score_all(a, v, t, chunk_size=4, device="cpu", show_progress=False, topk=2, out=(s, u))
    assert np.array_equal(s, ks.numpy()) and np.array_equal(u, ku.numpy(), equal_nan=True)
    with pytest.raises(VlmkitError, match="out: expected a"):
        score_all(a, v, t, device="cpu", show_progress=False, out=s)


def test_register_scored_method_writes_both_matrices_blockwise_and_registers_them(tmp_path, monkeypatch):
    a = _adapter(2)
    v, t = _feats(5, 8, 7), _feats(11, 8, 8)
    ref_s, ref_u = score_all(a, v, t, device="cpu", show_progress=False)
    monkeypatch.setattr(scoring, "OUT_BLOCK_ELEMENTS", 22)  # two rows per block
    wb.register_scored_method(tmp_path, "vacsr", lambda out: score_all(a, v, t, device="cpu", show_progress=False,
                                                                       out=out),
                              (5, 11), info={"score_kind": "logit"})
    m = wb.load_method(tmp_path, "vacsr")
    assert isinstance(m["scores"], np.memmap) and isinstance(m["uncertainty"], np.memmap)
    assert np.array_equal(m["scores"], ref_s.numpy()) and np.array_equal(m["uncertainty"], ref_u.numpy())
    info = wb.list_methods(tmp_path)["vacsr"]
    assert info["has_scores"] and info["has_uncertainty"] and not info["has_features"]
    assert info["score_kind"] == "logit"
    assert info["matrices"] == {"scores": "scores/vacsr.scores.npy", "uncertainty": "scores/vacsr.uncertainty.npy"}
    # a scorer that fails half-way registers nothing and leaves no matrix file behind
    def broken(out):
        out[0][0:1] = np.zeros((1, 11))
        raise RuntimeError("out of memory")
    with pytest.raises(RuntimeError):
        wb.register_scored_method(tmp_path, "broken", broken, (5, 11))
    assert "broken" not in wb.list_methods(tmp_path)
    assert sorted(p.name for p in (tmp_path / "scores").iterdir()) == ["vacsr.pt", "vacsr.scores.npy",
                                                                       "vacsr.uncertainty.npy"]


# ----------------------------------------------------------------- retrieval_r1 in blocks
@pytest.mark.parametrize("block_rows", [None, 1, 2, 5, 100])
def test_retrieval_r1_in_row_blocks_equals_the_metrics_on_the_dense_matrix(block_rows):
    rng = np.random.default_rng(4)
    n, per, d = 11, 3, 3
    ci = np.repeat(np.arange(n), per)
    rng.shuffle(ci)
    # small integer features: many exact ties between positives and negatives (the tie rule)
    img = torch.from_numpy(rng.integers(-2, 3, (n, d)).astype(np.float64))
    txt = torch.from_numpy(rng.integers(-2, 3, (n * per, d)).astype(np.float64))
    dense = bidirectional_recall(img @ txt.T, ci, ks=(1,))
    got = analysis.retrieval_r1(img, txt, ci, block_rows=block_rows)
    assert got == (100 * dense[("i2t", 1)], 100 * dense[("t2i", 1)])  # exactly, not approximately
    s = (img @ txt.T).numpy()
    ties = sum(np.isclose(s[i], s[i, ci == i].max()).sum() > 1 for i in range(n))
    assert ties > 0  # the case exercises ties
    # float32 features as well
    got32 = analysis.retrieval_r1(img.float(), txt.float(), ci, block_rows=block_rows)
    dense32 = bidirectional_recall(img.float() @ txt.float().T, ci, ks=(1,))
    assert got32 == (100 * dense32[("i2t", 1)], 100 * dense32[("t2i", 1)])


def test_retrieval_r1_refuses_an_image_without_caption():
    with pytest.raises(VlmkitError, match="without any caption"):
        analysis.retrieval_r1(torch.eye(3), torch.eye(3)[:2], np.array([0, 1]))


# ------------------------------------------------- the truth once per run: census and 01's gallery
def test_census_and_false_negative_gallery_from_pair_codes_equal_the_truth_computed_again(tmp_path):
    from vlmkit.data import make_shapes
    from vlmkit.metrics import false_negative_census
    from vlmkit.metrics.census import false_negative_counts
    from vlmkit.metrics.streaming import pair_code_matrix
    from vlmkit import viz

    ds = make_shapes("test", n_images=40, seed=3, preset="stress")  # generic captions: many false negatives
    codes = pair_code_matrix(ds, block_rows=7)
    brute = (ds.positives() & ~ds.labels()).sum(axis=0)
    assert brute.sum() > 0
    assert np.array_equal(false_negative_counts(ds, codes=codes), brute)
    assert np.array_equal(false_negative_counts(ds), brute)
    pd_testing = pytest.importorskip("pandas.testing")
    pd_testing.assert_frame_equal(false_negative_census(ds, codes=codes), false_negative_census(ds))
    html = viz.false_negative_captions_html(ds, None, codes=codes)
    assert html == viz.false_negative_captions_html(ds, None)
    i = int(np.argmax((ds.positives() & ~ds.labels()).sum(axis=1)))
    assert f"<b>Image {i}</b>" in html
    with pytest.raises(VlmkitError, match="codes: shape"):
        false_negative_counts(ds, codes=codes[:5])


def test_make_shapes_image_cache_gives_the_same_images_and_renders_once(tmp_path, monkeypatch):
    from vlmkit.data import make_shapes, shapes

    ref = make_shapes("test", n_images=12, seed=5)
    first = make_shapes("test", n_images=12, seed=5, image_cache=tmp_path)
    assert len(list(tmp_path.glob("shapes-test-12-*.npy"))) == 1
    calls = []
    real = shapes.render_scene
    monkeypatch.setattr(shapes, "render_scene", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = make_shapes("test", n_images=12, seed=5, image_cache=tmp_path)
    assert calls == []  # read back, not rendered
    for d in (first, again):
        assert np.array_equal(d.images.array, ref.images.array)
        assert d.images.fingerprint() == ref.images.fingerprint()  # feature caches keyed on it stay valid
        assert d.captions == ref.captions and np.array_equal(d.caption_image, ref.caption_image)
    other = make_shapes("test", n_images=12, seed=6, image_cache=tmp_path)  # another key, another file
    assert len(list(tmp_path.glob("shapes-test-12-*.npy"))) == 2
    assert not np.array_equal(other.images.array, ref.images.array)


def test_audit_false_negative_total_from_pair_codes_equals_the_truth():
    from vlmkit.audit.measure import total_errors
    from vlmkit.data import make_shapes
    from vlmkit.metrics.streaming import pair_code_matrix

    ds = make_shapes("test", n_images=30, seed=1, preset="stress")
    codes = pair_code_matrix(ds)
    brute = int((ds.positives() & ~ds.labels()).sum())
    assert brute > 0
    assert total_errors(ds, "false_negative", codes=codes) == total_errors(ds, "false_negative") == brute
    with pytest.raises(VlmkitError, match="codes: shape"):
        total_errors(ds, "false_negative", codes=codes[:, :3])


# ------------------------------------------------- reading memory-mapped matrices in bounded RSS
def _rss_file_mib() -> float:
    from pathlib import Path

    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1]) / 1024
    pytest.skip("no RssFile in /proc/self/status")


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/status"), reason="Linux /proc only")
def test_load_matrix_reads_row_and_column_blocks_without_keeping_the_pages_resident(tmp_path):
    from vlmkit.metrics.scores import read_columns

    n, m = 2048, 8192  # 64 MiB of float32
    x = np.random.default_rng(0).standard_normal((n, m)).astype(np.float32)
    np.save(tmp_path / "s.npy", x)
    plain = np.load(tmp_path / "s.npy", mmap_mode="r")
    before = _rss_file_mib()
    total = sum(float(np.asarray(plain[a:a + 128], np.float64).sum()) for a in range(0, n, 128))
    grown_plain = _rss_file_mib() - before
    del plain
    rel = wb.load_matrix(tmp_path / "s.npy")
    assert isinstance(rel, np.memmap) and rel.shape == (n, m) and rel.dtype == np.float32
    before = _rss_file_mib()
    total2 = sum(float(np.asarray(rel[a:a + 128], np.float64).sum()) for a in range(0, n, 128))
    grown_rows = _rss_file_mib() - before
    # column blocks (t2i) through the metrics' reader: row slabs, each its own read
    cols = sum(float(read_columns(rel, a, a + 512).astype(np.float64).sum()) for a in range(0, m, 512))
    grown = _rss_file_mib() - before
    assert total2 == total and cols == pytest.approx(total, rel=1e-9)  # the same values
    assert np.array_equal(read_columns(rel, 3, 7), x[:, 3:7].T) and np.array_equal(rel[5:9], x[5:9])
    assert grown_plain > 48  # a plain memmap keeps every page read (~64 MiB)
    assert grown_rows < 8 and grown < 16  # the releasing one about a block / a slab (fault-around included)
    from vlmkit.metrics import Scores

    S = Scores(rel)
    assert np.array_equal(S.T.block(100, 130)[0].numpy(), x[:, 100:130].T)  # Scores' t2i blocks read the same


# ------------------------------------------------------------- FN AUROC: one search per value
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pairs_above_counts_greater_and_tied_pairs_like_brute_force(dtype):
    from vlmkit.metrics.uncertainty import _pairs_above

    rng = np.random.default_rng(2)
    pos = torch.from_numpy(rng.integers(0, 9, 300).astype(np.float64)).to(dtype)  # many ties
    neg = torch.from_numpy(rng.integers(-1, 11, 1000).astype(np.float64)).to(dtype)
    g, t = _pairs_above(torch.sort(pos).values, neg)
    P, N = pos.double()[:, None], neg.double()[None, :]
    assert (g, t) == (float((P > N).sum()), float((P == N).sum()))
    assert _pairs_above(torch.sort(pos).values, neg.double()) == (g, t)  # mixed dtypes compare exactly
    assert _pairs_above(torch.zeros(0, dtype=dtype), neg) == (0.0, 0.0)


def test_false_negative_auroc_on_float32_equals_float64():
    from vlmkit.metrics.uncertainty import false_negative_auroc

    rng = np.random.default_rng(3)
    n, m = 12, 60
    ci = np.repeat(np.arange(n), 5)
    truth = rng.random((n, m)) < 0.2
    truth[ci, np.arange(m)] = True
    u32 = torch.from_numpy(np.round(rng.random((n, m)), 2).astype(np.float32))  # ties
    a = false_negative_auroc(u32, ci, truth, chunk_size=5)
    b = false_negative_auroc(u32.double(), ci, truth, chunk_size=5)
    assert a == b
    lab = np.zeros((n, m), bool)
    lab[ci, np.arange(m)] = True
    fn, tn = u32.double().numpy()[truth & ~lab], u32.double().numpy()[~truth & ~lab]
    brute = ((fn[:, None] > tn[None, :]).sum() + 0.5 * (fn[:, None] == tn[None, :]).sum()) / (len(fn) * len(tn))
    assert a["auroc"] == pytest.approx(brute, abs=1e-15)


# ------------------------------------------------- the embedded truth by table lookup
def _match_atoms_by_comparison(objs, spec, backgrounds=None):
    """match_atoms as it was before the lookup table: every attribute compared pair by pair."""
    import itertools

    present = objs[:, :, 0] >= 0
    cl = spec.clauses
    specified = cl >= 0
    k = objs.shape[1]
    hits = [[(((objs[:, o, None, :] == cl[None, :, c, :]) & specified[None, :, c, :]).sum(-1, dtype=np.int16)
              * present[:, o, None]) for o in range(k)] for c in range(k)]
    best = np.zeros((len(objs), len(cl)), dtype=np.int16)
    for perm in itertools.permutations(range(k)):
        np.maximum(best, hits[0][perm[0]] + hits[1][perm[1]] + hits[2][perm[2]], out=best)
    n_obj = present.sum(axis=1)
    best += (spec.count[None, :] >= 0) & (spec.count[None, :] == n_obj[:, None])
    if backgrounds is not None:
        best += (spec.background[None, :] >= 0) & (spec.background[None, :] == np.asarray(backgrounds)[:, None])
    return best


@pytest.mark.parametrize("preset", ["coco", "stress", "web"])
def test_match_atoms_by_lookup_equals_attribute_comparison(preset):
    from vlmkit.data import make_shapes
    from vlmkit.data.shapes import CaptionSpec, match_atoms

    ds = make_shapes("test", n_images=60, seed=2, preset=preset)
    t = ds.truth
    got = match_atoms(t.objs, t.spec, t.backgrounds)
    ref = _match_atoms_by_comparison(t.objs, t.spec, t.backgrounds)
    assert got.dtype == ref.dtype == np.int16 and np.array_equal(got, ref)
    assert len(np.unique(ref)) > 2  # partial and full matches
    # arbitrary attribute tuples, unspecified (−1) attributes and absent objects
    rng = np.random.default_rng(7)
    objs = rng.integers(-1, 4, (40, 3, 4)).astype(np.int8)
    objs[rng.random(40) < 0.3, 2] = -1
    spec = CaptionSpec(rng.integers(-1, 4, (70, 3, 4)).astype(np.int8), rng.integers(-1, 4, 70).astype(np.int8),
                       rng.integers(-1, 3, 70).astype(np.int8))
    bg = rng.integers(-1, 3, 40).astype(np.int8)
    assert np.array_equal(match_atoms(objs, spec, bg), _match_atoms_by_comparison(objs, spec, bg))
    assert np.array_equal(match_atoms(objs, spec), _match_atoms_by_comparison(objs, spec))


def test_column_blocks_of_tensors_and_arrays_read_in_slabs_equal_the_transpose(monkeypatch):
    from vlmkit.metrics import Scores
    from vlmkit.metrics import scores as scores_mod
    from vlmkit.vacsr.fig3 import _rows_of

    monkeypatch.setattr(scores_mod, "COLUMN_READ_ELEMENTS", 50)  # several slabs, a ragged last one
    x = torch.randn(37, 23)
    for a, b in ((0, 23), (3, 11), (22, 23)):
        assert torch.equal(Scores(x).T.block(a, b)[0], x[:, a:b].T)
        assert torch.equal(Scores(x.numpy()).T.block(a, b)[0], x[:, a:b].T)
        assert torch.equal(_rows_of(x, a, b, True), x[:, a:b].T.double())
        assert torch.equal(_rows_of(x.numpy(), a, b, True, dtype=None), x[:, a:b].T)
