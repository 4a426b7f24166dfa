"""vlmkit.measurements and the block-bounded storage/statistics behind notebooks 05–08: each
streamed statistic against the dense computation (or brute force) on small random cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from vlmkit import measurements
from vlmkit import workbook as wb
from vlmkit.metrics import authors_calibration, retrieval_calibration
from vlmkit.metrics.streaming import CODE_TO_TYPE, PairTruth, pair_type_quantiles, sparse_rows, truth_from_codes
from vlmkit.metrics.uncertainty import uncertainty_by_pair_type
from vlmkit.utils import VlmkitError
from vlmkit.vacsr.fig3 import fig3_report


def _case(n=14, per=3, seed=0, ties=True):
    """scores / σ² (float32, as stored), caption_image, labels and a truth with false negatives."""
    g = np.random.default_rng(seed)
    m = n * per
    ci = np.repeat(np.arange(n), per)
    g.shuffle(ci)
    labels = ci[None, :] == np.arange(n)[:, None]
    truth = labels | (g.random((n, m)) < 0.12)
    s = g.random((n, m)) + 0.8 * truth
    if ties:
        s = np.round(s * 6) / 6  # many ties: the pessimistic rule matters
    u = g.random((n, m))
    return s.astype(np.float32), u.astype(np.float32), ci, labels, truth


def _memmap(tmp_path, name, x):
    p = tmp_path / f"{name}.npy"
    np.save(p, x)
    return np.load(p, mmap_mode="r")


def _assert_frames(a: pd.DataFrame, b: pd.DataFrame):
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_dtype=False, atol=1e-9, rtol=0)


@pytest.mark.parametrize("seed", [0, 1])
def test_streamed_fig3_report_equals_the_dense_one(tmp_path, seed):
    """Memory-mapped float32 matrices read 3 rows (t2i: 3 columns) at a time, sparse labels and
    truth, exact partial sorts — every table equal to one dense float64 block."""
    s, u, ci, labels, truth = _case(seed=seed)
    dense = fig3_report(torch.from_numpy(s).double(), torch.from_numpy(u).double(), torch.from_numpy(labels),
                        torch.from_numpy(truth), n_boot=7, ks=(1, 5, 60))
    streamed = fig3_report(_memmap(tmp_path, "s", s), _memmap(tmp_path, "u", u), sp.csr_matrix(labels), sp.csr_matrix(truth),
                           n_boot=7, ks=(1, 5, 60), block_rows=3)
    for part in ("bins", "summary", "strata", "ranking"):
        _assert_frames(streamed[part], dense[part])
    assert len(dense["ranking"]) == 2 * 2 * 3


def test_fig3_summary_reads_the_report_and_labels_its_protocol(tmp_path):
    s, u, ci, labels, truth = _case()
    details = {}
    out = measurements.fig3_summary(_memmap(tmp_path, "s", s), u, ci, sp.csr_matrix(truth), n_boot=5, details=details)
    _assert_frames(details["report"]["bins"], fig3_report(s, u, labels, truth, n_boot=5)["bins"])
    rep = fig3_report(s, u, labels, truth, n_boot=5)["summary"].set_index(["direction", "protocol", "source", "binning"])
    for row in out.itertuples():
        assert row.pearson == pytest.approx(rep.loc[(row.direction, "labels", "sigma2", "width"), "pearson_r"], nan_ok=True)
        assert row.pearson_control == pytest.approx(rep.loc[(row.direction, "labels", "-score", "width"), "pearson_r"], nan_ok=True)
        assert row.pearson_truth == pytest.approx(rep.loc[(row.direction, "exact truth", "sigma2", "width"), "pearson_r"], nan_ok=True)
        assert row.ci_low == pytest.approx(rep.loc[(row.direction, "labels", "sigma2", "width"), "ci_low"], nan_ok=True)
    assert list(out.direction) == ["i2t", "t2i"] and "the paper's" in out.protocol[0] and "pearson_truth" in out.protocol[0]
    no_truth = measurements.fig3_summary(s, u, ci, n_boot=0)
    assert "pearson_truth" not in no_truth and "truth" not in no_truth.protocol[0]
    with pytest.raises(VlmkitError, match="caption_image"):
        measurements.fig3_summary(s, u, ci[:-1])


def test_calibration_equals_the_library_protocols(tmp_path):
    s, _, ci, labels, truth = _case(ties=False)
    details = {}
    out = measurements.calibration(_memmap(tmp_path, "s", s), ci, sp.csr_matrix(truth), tau=0.05, n_bins=10, details=details).set_index("direction")
    sq = authors_calibration(s, ci, tau=0.05, n_bins=10)
    for d in ("i2t", "t2i"):
        S, L, T = (s, labels, truth) if d == "i2t" else (s.T, labels.T, truth.T)
        assert out.loc[d, "ece_authors"] == pytest.approx(100 * sq[d].ece, abs=1e-9)
        assert out.loc[d, "ece_labels"] == pytest.approx(100 * retrieval_calibration(torch.from_numpy(S.copy()), L, temperature=0.05, n_bins=10)[0], abs=1e-6)
        assert out.loc[d, "ece_truth"] == pytest.approx(100 * retrieval_calibration(torch.from_numpy(S.copy()), T, temperature=0.05, n_bins=10)[0], abs=1e-6)
    assert out.protocol.iloc[0].startswith("ECE (%)") and "authors" in out.protocol.iloc[0]
    assert set(details["bins"]) == {(v, d) for v in ("authors", "labels", "truth") for d in ("i2t", "t2i")}
    assert "ece_truth" not in measurements.calibration(s, ci, tau=0.05)


def test_fn_auroc_against_brute_force(tmp_path):
    s, u, ci, labels, truth = _case(n=8, per=2)
    out = measurements.fn_auroc(_memmap(tmp_path, "u", u), _memmap(tmp_path, "s", s), ci, sp.csr_matrix(truth)).iloc[0]
    fn, tn = truth & ~labels, ~truth & ~labels

    def brute(x):
        a, b = x[fn].astype(np.float64), x[tn].astype(np.float64)
        return np.mean([(p > q) + 0.5 * (p == q) for p in a for q in b])

    assert out.fn_auroc == pytest.approx(brute(u), abs=1e-12) and out.fn_auroc_control == pytest.approx(brute(s), abs=1e-12)
    assert out.n_false_negatives == fn.sum() and out.n_true_negatives == tn.sum() and out.direction == "pairs"


def test_sigma2_by_pair_type_streamed_equals_the_dense_table(tmp_path):
    s, u, ci, labels, truth = _case(ties=True)
    u = np.round(u * 8) / 8  # ties in σ² too
    dense = uncertainty_by_pair_type(torch.from_numpy(u), ci, truth)
    out = measurements.sigma2_by_pair_type(_memmap(tmp_path, "u", u.astype(np.float32)), ci, sp.csr_matrix(truth))
    _assert_frames(out.drop(columns="protocol"), dense)
    codes = np.where(labels, np.where(truth, 0, 3), np.where(truth, 1, 2)).astype(np.int8)
    _assert_frames(measurements.sigma2_by_pair_type(u, ci, None, codes=codes).drop(columns="protocol"), dense)


@pytest.mark.parametrize("seed", range(3))
def test_pair_type_quantiles_are_np_quantile_exactly(seed):
    g = np.random.default_rng(seed)
    v = g.random((23, 41)).astype(np.float32)
    if seed == 1:
        v = np.round(v * 5) / 5
    codes = g.integers(0, 4, v.shape).astype(np.int8)
    if seed == 2:
        codes[codes == 1] = 2  # an empty type
        v[0, 0] = np.nan  # non-finite values are left out
    qs = (0.0, 0.05, 0.33, 0.5, 0.95, 1.0)
    r = pair_type_quantiles(v, codes=codes, quantiles=qs, block_rows=4)
    t = CODE_TO_TYPE[codes]
    for k in range(3):
        x = v[(t == k) & np.isfinite(v)].astype(np.float64)
        assert r["n"][k] == x.size
        if x.size:
            np.testing.assert_allclose(r["quantiles"][k], np.quantile(x, qs), rtol=0, atol=1e-12)
            assert r["mean"][k] == pytest.approx(x.mean(), abs=1e-12)
        else:
            assert np.isnan(r["quantiles"][k]).all() and np.isnan(r["mean"][k])


def test_truth_helpers_and_pair_truth_give_the_pair_codes():
    _, _, ci, labels, truth = _case()
    codes = np.where(labels, np.where(truth, 0, 3), np.where(truth, 1, 2)).astype(np.int8)
    assert (truth_from_codes(codes, block_rows=5).toarray() == truth).all()
    assert (sparse_rows(truth, block_rows=4).toarray() == truth).all()
    pt = PairTruth(ci, truth)
    assert (pt.labels(np.arange(3, 7)) == labels[3:7]).all() and (pt.positives(np.arange(2)) == truth[:2]).all()
    with pytest.raises(VlmkitError, match="positives"):
        PairTruth(ci, truth[:, :-1])


def test_summary_from_tables_hand_case():
    ret = pd.DataFrame([{"method": "a", "protocol": "full 3x9", "direction": "i2t", "metric": "R@1", "value": 50.0},
                        {"method": "a", "protocol": "full 3x9", "direction": "i2t", "metric": "R@5", "value": 90.0}])
    unc = pd.DataFrame([{"method": "v", "direction": "t2i", "pearson": -0.5, "pearson_control": -0.7},
                        {"method": "v", "direction": "pairs", "fn_auroc": 0.6, "fn_auroc_control": 0.8}])
    s = measurements.summary(ret, None, pd.DataFrame([{"method": "a", "gap": 0.8}]), unc).set_index("method")
    assert s.loc["a", "R@1 i2t [full 3x9]"] == 50.0 and "R@5 i2t [full 3x9]" not in s and s.loc["a", "gap ‖Δ‖"] == 0.8
    assert s.loc["v", "unc–R@1 r [one-to-one labels] t2i"] == -0.5 and s.loc["v", "−score control r [one-to-one labels] t2i"] == -0.7
    assert s.loc["v", "FN-vs-TN AUROC of σ²"] == 0.6 and s.loc["v", "FN-vs-TN AUROC of the score"] == 0.8


def test_register_method_stores_float32_npy_read_back_memory_mapped(tmp_path):
    s, u, *_ = _case()
    s64 = torch.from_numpy(s).double() + 1e-9
    wb.register_method(tmp_path, "v", scores=s64, uncertainty=torch.from_numpy(u), info={"score_kind": "logit"})
    wb.register_method(tmp_path, "f", img=torch.eye(3, 4), txt=torch.eye(5, 4))
    m = wb.load_method(tmp_path, "v")
    assert isinstance(m["scores"], np.memmap) and m["scores"].dtype == np.float32 and not m["scores"].flags.writeable
    np.testing.assert_array_equal(m["scores"], s64.float().numpy())
    np.testing.assert_array_equal(m["uncertainty"], u)
    assert m["img"] is None and sorted(p.name for p in (tmp_path / "scores").iterdir()) == ["f.pt", "v.pt", "v.scores.npy", "v.uncertainty.npy"]
    f = wb.load_method(tmp_path, "f")
    assert f["uncertainty"] is None and torch.equal(f["scores"], torch.eye(3, 4) @ torch.eye(5, 4).T)
    assert wb.load_method(tmp_path, "f", cosine=False)["scores"] is None
    # a run written before the .npy layout (matrices inside the .pt) still loads
    torch.save({"img": None, "txt": None, "scores": torch.ones(2, 3), "uncertainty": None}, tmp_path / "scores" / "old.pt")
    reg = wb.list_methods(tmp_path)
    reg["old"] = {"path": "scores/old.pt", "has_scores": True}
    (tmp_path / "methods.json").write_text(__import__("json").dumps(reg))
    assert torch.equal(wb.load_method(tmp_path, "old")["scores"], torch.ones(2, 3))
    (tmp_path / "scores" / "v.uncertainty.npy").unlink()
    with pytest.raises(VlmkitError, match="v.uncertainty.npy"):
        wb.load_method(tmp_path, "v")
    with pytest.raises(VlmkitError, match="uncertainty"):
        wb.register_method(tmp_path, "w", scores=torch.ones(2, 3), uncertainty=torch.ones(3, 2))


def test_pair_codes_are_cached_per_run_and_equal_the_dense_pair_types(tmp_path, monkeypatch):
    from vlmkit.metrics import streaming

    monkeypatch.setattr(streaming, "BLOCK_ELEMENTS", 5 * 60)  # 12 images × 60 captions: written in 3 row blocks
    run = wb.prepare_run_dir(tmp_path / "run")
    wb.save_data_spec(run, "shapes", 12, 0, model="vlmkit-tiny", pretrained_dir="")
    ds = wb.run_dataset(run)
    assert len(list(streaming.row_blocks(ds.num_images, ds.num_captions))) == 3
    codes = wb.pair_codes(run, ds)
    lab, pos = ds.labels(), ds.positives()
    np.testing.assert_array_equal(codes, np.where(lab, np.where(pos, 0, 3), np.where(pos, 1, 2)))
    assert codes.dtype == np.int8
    cached = list((run / "cache").glob("pair_codes-*.npy"))
    assert len(cached) == 1 and isinstance(wb.pair_codes(run, ds), np.memmap)
    assert not [p.name for p in (run / "cache").iterdir() if p.name.endswith(".tmp")]  # no temporary file left


def test_query_table_reads_one_row_of_a_memmap(tmp_path):
    from vlmkit.analysis import query_topk
    from vlmkit.viz import query_table

    ds = wb.load_test_dataset("shapes", 12, 0)
    g = np.random.default_rng(0)
    s = g.random((ds.num_images, ds.num_captions)).astype(np.float32)
    u = g.random(s.shape).astype(np.float32)
    S, U = _memmap(tmp_path, "s", s), _memmap(tmp_path, "u", u)
    for d, q in (("i2t", 3), ("t2i", 7)):
        t = query_table(ds, S, U, d, q, k=6)
        ref = query_topk(s if d == "i2t" else s.T.copy(), q, k=6, uncertainty=u if d == "i2t" else u.T.copy(),
                         labels=ds.labels() if d == "i2t" else ds.labels().T, truth=ds.positives() if d == "i2t" else ds.positives().T)
        _assert_frames(t[ref.columns], ref)


def test_the_ledger_and_the_notebooks_measure_through_the_same_functions():
    """Issue #18: the claims ledger's VACSR and calibration numbers are the notebooks' tables
    (05: fig3_summary, fn_auroc; 07: calibration) on the same inputs — and the FN AUROC is a
    brute-force Mann–Whitney count over the unlabelled pairs."""
    from vlmkit.claims.experiments import authors_calibration_metrics, vacsr_measurements
    from vlmkit.data import make_shapes

    test = make_shapes("test", n_images=24)
    g = torch.Generator().manual_seed(3)
    scores = torch.randn(24, len(test.caption_image), generator=g)
    unc = torch.rand(24, len(test.caption_image), generator=g)
    truth = test.positives()
    got = vacsr_measurements(scores, unc, test, n_boot=0, seed=0)
    fig3 = measurements.fig3_summary(scores, unc, test.caption_image, truth, n_boot=0).set_index("direction")
    fn = measurements.fn_auroc(unc, scores, test.caption_image, truth).iloc[0]
    for d in ("i2t", "t2i"):
        assert got[f"fig3_r_{d}"] == pytest.approx(fig3.loc[d, "pearson"], nan_ok=True)
        assert got[f"fig3_r_control_{d}"] == pytest.approx(fig3.loc[d, "pearson_control"], nan_ok=True)
    assert got["fn_auroc"] == fn.fn_auroc and got["fn_auroc_score"] == fn.fn_auroc_control
    labels = np.zeros(scores.shape, bool)
    labels[test.caption_image, np.arange(scores.shape[1])] = True
    t = np.asarray(truth, bool)
    u = unc.numpy()
    fns, tns = u[t & ~labels], u[~t & ~labels]
    brute = ((fns[:, None] > tns[None, :]).sum() + 0.5 * (fns[:, None] == tns[None, :]).sum()) / (len(fns) * len(tns))
    assert got["fn_auroc"] == pytest.approx(brute, abs=1e-9)
    cal = measurements.calibration(scores, test.caption_image, tau=0.05, n_bins=15).set_index("direction")
    led = authors_calibration_metrics(scores, test, tau=0.05, n_bins=15)
    for d in ("i2t", "t2i"):
        assert led[f"authors_ece_{d}"] == pytest.approx(cal.loc[d, "ece_authors"])
        assert led[f"authors_acc_{d}"] == pytest.approx(100 * cal.loc[d, "accuracy_authors"])
