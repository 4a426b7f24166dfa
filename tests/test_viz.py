"""vlmkit.viz: every figure built from small data holds that data (traces, points, legend
names, axis titles), the helpers against references computed here, and save_figure's files
(offline HTML + one shared plotly.min.js, PNG only when asked and possible, atomic writes)."""

from __future__ import annotations

import os
import pathlib
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import torch

from vlmkit import analysis, primer, viz
from vlmkit.metrics import reliability_bins
from vlmkit.utils import VlmkitError
from vlmkit.viz import io as viz_io

torch.set_num_threads(1)


def _unit(a):
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def _cones(n=12, m=None, d=6, seed=0, spread=0.3):
    rng = np.random.default_rng(seed)
    x = _unit(np.eye(d)[0] + spread * rng.standard_normal((n, d)))
    y = _unit(np.eye(d)[1] + spread * rng.standard_normal((n if m is None else m, d)))
    return x, y


def _arr(v):
    return np.asarray(v, dtype=np.float64)


def _titles_nonempty(fig: go.Figure, *axes: str):
    for ax in axes:
        title = fig.layout[ax].title.text
        assert title and title.strip(), f"{ax} has no title"


# ------------------------------------------------------------------------------- pair_types
def test_pair_types_matches_reference_and_checks_shapes():
    rng = np.random.default_rng(0)
    labels = rng.random((5, 7)) < 0.2
    positives = labels | (rng.random((5, 7)) < 0.3)
    got = viz.pair_types(labels, positives)
    ref = np.empty(labels.shape, dtype=int)
    for i in range(5):
        for j in range(7):
            ref[i, j] = 0 if labels[i, j] else (1 if positives[i, j] else 2)
    np.testing.assert_array_equal(got, ref)
    assert set(np.unique(got)) == {0, 1, 2}
    # a labelled pair is a positive even if the extended positives miss it
    assert viz.pair_types([True], [False]).tolist() == [0]
    with pytest.raises(VlmkitError, match="differ in shape"):
        viz.pair_types(labels, positives[:, :-1])


# ------------------------------------------------------------------------ similarity_histogram
def _pairs(seed=1, n=6, m=30):
    rng = np.random.default_rng(seed)
    ci = np.arange(m) % n
    labels = np.arange(n)[:, None] == ci[None, :]
    positives = labels | (rng.random((n, m)) < 0.15)
    sims = np.where(labels, 0.6, np.where(positives, 0.4, 0.1)) + 0.05 * rng.standard_normal((n, m))
    return sims, labels, positives


def test_similarity_histogram_holds_the_three_pair_types():
    sims, labels, positives = _pairs()
    t = viz.pair_types(labels, positives)
    fig = viz.similarity_histogram(torch.from_numpy(sims), labels, positives, bins=20)
    assert len(fig.data) == 3 and all(isinstance(tr, go.Bar) for tr in fig.data)
    names = [tr.name for tr in fig.data]
    edges = np.linspace(sims.min(), sims.max(), 21)
    width = edges[1] - edges[0]
    for k, word in enumerate(("positive (labelled)", "false negative (true, unlabelled)", "true negative")):
        assert names[k].startswith(word) and f"n={int((t == k).sum()):,}" in names[k]
        ref = np.histogram(sims[t == k], bins=edges)[0]  # shared bins spanning the data
        np.testing.assert_array_equal(_arr(fig.data[k].customdata), ref)
        np.testing.assert_allclose(_arr(fig.data[k].y), ref / (ref.sum() * width))
        np.testing.assert_allclose(_arr(fig.data[k].x), (edges[:-1] + edges[1:]) / 2)
        assert (_arr(fig.data[k].y) * width).sum() == pytest.approx(1.0)  # a density per pair type
    assert sum(_arr(tr.customdata).sum() for tr in fig.data) == sims.size
    _titles_nonempty(fig, "xaxis", "yaxis")
    assert fig.layout.title.text


def test_similarity_histogram_subsamples_only_true_negatives():
    sims, labels, positives = _pairs(seed=2, n=8, m=40)
    t = viz.pair_types(labels, positives)
    n_pos, n_tn = int((t == 0).sum()), int((t == 2).sum())
    cap = n_pos - 10  # fewer than the positives and the true negatives
    fig = viz.similarity_histogram(sims, labels, positives, max_negatives=cap, seed=0)
    by_name = {tr.name.split(" (n=")[0]: tr for tr in fig.data}
    assert _arr(by_name["true negative"].customdata).sum() == cap
    assert f"n={n_tn:,}" in by_name["true negative"].name  # the legend counts every pair
    # positives are never thinned out
    assert _arr(by_name["positive (labelled)"].customdata).sum() == n_pos
    # seeded: the same subsample; another seed another one
    again = viz.similarity_histogram(sims, labels, positives, max_negatives=cap, seed=0)
    np.testing.assert_array_equal(_arr(again.data[2].customdata), _arr(fig.data[2].customdata))
    other = [viz.similarity_histogram(sims, labels, positives, max_negatives=cap, seed=s).data[2].customdata for s in (1, 2, 3)]
    assert any(not np.array_equal(_arr(o), _arr(fig.data[2].customdata)) for o in other)


def test_similarity_histogram_figure_stays_small_for_millions_of_pairs():
    import json

    from vlmkit.viz.io import plotly_mimedata

    rng = np.random.default_rng(0)
    sims = rng.standard_normal((1000, 5000)).astype(np.float32)
    labels = np.zeros_like(sims, dtype=bool)
    labels[np.arange(1000), np.arange(0, 5000, 5)] = True
    fig = viz.similarity_histogram(sims, labels, labels)
    assert len(json.dumps(plotly_mimedata(fig))) < 20_000  # binned: no per-pair values in the notebook


def test_similarity_histogram_skips_empty_types_and_checks_shape():
    sims, labels, _ = _pairs(seed=3)
    fig = viz.similarity_histogram(sims, labels, labels)  # no false negatives
    assert [tr.name.split(" (n=")[0] for tr in fig.data] == ["positive (labelled)", "true negative"]
    with pytest.raises(VlmkitError, match="differ in shape"):
        viz.similarity_histogram(sims[:, :-1], labels, labels)


# ------------------------------------------------------------------ reliability / uncertainty
def test_reliability_figure_bars_equal_bins():
    rng = np.random.default_rng(4)
    conf = rng.random(200) ** 0.5
    correct = rng.random(200) < conf
    bins = reliability_bins(conf, correct, n_bins=10)
    fig = viz.reliability_figure(bins, 0.0345, title="Rel")
    bar, pts, diag, hist = fig.data
    assert isinstance(bar, go.Bar) and len(bar.x) == len(bins) == 10
    np.testing.assert_allclose(_arr(bar.x), (np.arange(10) + 0.5) / 10)
    np.testing.assert_allclose(_arr(bar.y), bins["accuracy"].fillna(0).to_numpy())
    np.testing.assert_array_equal(np.asarray(bar.customdata), bins["count"].to_numpy())
    np.testing.assert_allclose(_arr(pts.x), bins["confidence"].to_numpy())
    assert list(diag.x) == [0, 1] and list(diag.y) == [0, 1]
    assert "ECE 3.45%" in fig.layout.title.text and fig.layout.title.text.startswith("Rel")
    assert {tr.name for tr in fig.data} == {"top-1 accuracy per bin", "(mean confidence, accuracy)", "perfect calibration",
                                            "share of queries per bin"}
    # the histogram of confidences under the bars: the share of the 200 queries in each bin
    assert isinstance(hist, go.Bar) and hist.yaxis == "y2" and hist.xaxis == "x2"
    np.testing.assert_allclose(_arr(hist.y), bins["count"].to_numpy() / 200)
    np.testing.assert_allclose(_arr(hist.x), _arr(bar.x))
    _titles_nonempty(fig, "xaxis2", "yaxis", "yaxis2")
    with pytest.raises(VlmkitError, match="bins need columns"):
        viz.reliability_figure(bins.drop(columns="accuracy"), 0.1)


def test_reliability_figure_empty_bins_draw_zero_height_bars():
    bins = reliability_bins(np.array([0.05, 0.95, 0.97]), np.array([True, True, False]), n_bins=5)
    fig = viz.reliability_figure(bins, 0.1)
    assert len(fig.data[0].x) == 5
    np.testing.assert_allclose(_arr(fig.data[0].y), [1.0, 0, 0, 0, 0.5])
    np.testing.assert_allclose(_arr(fig.data[3].y), [1 / 3, 0, 0, 0, 2 / 3])  # the empty middle shows as empty


def test_uncertainty_figure_points_are_nonempty_bins():
    bins = pd.DataFrame({"uncertainty": [0.1, 0.2, 0.3, 0.4], "r1": [0.9, 0.7, np.nan, 0.2], "count": [40, 10, 0, 5]})
    fig = viz.uncertainty_figure(bins, -0.876)
    (tr,) = fig.data
    np.testing.assert_allclose(_arr(tr.x), [0.1, 0.2, 0.4])
    np.testing.assert_allclose(_arr(tr.y), [90, 70, 20])
    size = _arr(tr.marker.size)
    assert size[0] == pytest.approx(30) and size[0] > size[1] > size[2]  # ∝ sqrt(count), largest 30
    assert "Pearson r = -0.876" in fig.layout.title.text
    _titles_nonempty(fig, "xaxis", "yaxis")
    with pytest.raises(VlmkitError, match="bins need columns"):
        viz.uncertainty_figure(bins.drop(columns="count"), 0.0)


# ------------------------------------------------------------------------ project_embeddings
def test_project_embeddings_pca_matches_eigendecomposition():
    x, y = _cones(10, 14, d=6, seed=5)
    px, py = viz.project_embeddings(torch.from_numpy(x), y, "pca", dim=3)
    assert px.shape == (10, 3) and py.shape == (14, 3)
    z = np.concatenate([x, y])
    zc = z - z.mean(0)
    w, v = np.linalg.eigh(zc.T @ zc)
    ref = zc @ v[:, ::-1][:, :3]
    got = np.concatenate([px, py])
    for c in range(3):  # each axis up to sign
        s = np.sign(ref[:, c] @ got[:, c])
        np.testing.assert_allclose(got[:, c], s * ref[:, c], atol=1e-9)
    # axis 1 is the gap direction here, with images on its positive side
    assert px[:, 0].min() > 0 > py[:, 0].max()
    # 2-D is the first two of the 3-D coordinates
    p2x, _ = viz.project_embeddings(x, y, "pca", dim=2)
    np.testing.assert_allclose(np.abs(p2x), np.abs(px[:, :2]), atol=1e-9)


def test_project_embeddings_bad_inputs():
    x, y = _cones(5, d=4, seed=6)
    with pytest.raises(VlmkitError, match="equal d"):
        viz.project_embeddings(x, y[:, :3])
    with pytest.raises(VlmkitError, match="equal d"):
        viz.project_embeddings(x[0], y)
    with pytest.raises(VlmkitError, match="dim must be 2 or 3"):
        viz.project_embeddings(x, y, dim=4)
    with pytest.raises(VlmkitError, match="'pca' or 'umap'"):
        viz.project_embeddings(x, y, method="tsne")


# ------------------------------------------------------------------------- subsample_pairs
@pytest.mark.parametrize("max_images", [1, 4, 9, 50])
def test_subsample_pairs_properties(max_images):
    rng = np.random.default_rng(7)
    n = 9
    ci = rng.integers(0, n, 40)
    keep, caps = viz.subsample_pairs(n, ci, max_images, seed=3)
    assert len(keep) == min(max_images, n) == len(set(keep.tolist()))
    assert (np.diff(keep) > 0).all() and keep.min() >= 0 and keep.max() < n
    assert caps.tolist() == [j for j in range(len(ci)) if ci[j] in set(keep.tolist())]  # all their captions, in order
    k2, c2 = viz.subsample_pairs(n, ci, max_images, seed=3)
    assert np.array_equal(keep, k2) and np.array_equal(caps, c2)
    if max_images >= n:
        assert keep.tolist() == list(range(n)) and caps.tolist() == list(range(len(ci)))


def test_subsample_pairs_seed_changes_the_subset():
    subsets = {tuple(viz.subsample_pairs(30, np.arange(30), 5, seed=s)[0]) for s in range(5)}
    assert len(subsets) > 1


# ------------------------------------------------------------------------- embedding_figure
def test_embedding_figure_2d_points_lines_and_labels():
    n, per = 8, 2
    x, _ = _cones(n, d=6, seed=8)
    ci = np.repeat(np.arange(n), per)
    y = _unit(x[ci] + 1.2 * np.eye(6)[1] + 0.2 * np.random.default_rng(8).standard_normal((n * per, 6)))
    fig = viz.embedding_figure(x, torch.from_numpy(y), ci, n_lines=5, title="T")
    lines, imgs, caps = fig.data
    assert imgs.name == f"images ({n})" and caps.name == f"captions ({n * per})" and lines.name == "matched pairs (5)"
    px, py = viz.project_embeddings(x, y)
    np.testing.assert_allclose(_arr(imgs.x), px[:, 0]) and np.testing.assert_allclose(_arr(imgs.y), px[:, 1])
    np.testing.assert_allclose(_arr(caps.x), py[:, 0]) and np.testing.assert_allclose(_arr(caps.y), py[:, 1])
    # 5 segments (start, end, NaN break), each joining a caption to the image it was written for
    lx, ly = _arr(lines.x), _arr(lines.y)
    assert len(lx) == 15 and np.isnan(lx[2::3]).all()
    seen = set()
    for s in range(5):
        a, b = np.array([lx[3 * s], ly[3 * s]]), np.array([lx[3 * s + 1], ly[3 * s + 1]])
        j = int(np.argmin(np.linalg.norm(py - b, axis=1)))
        assert np.allclose(py[j], b) and np.allclose(px[ci[j]], a)
        seen.add(j)
    assert len(seen) == 5  # distinct captions
    assert fig.layout.xaxis.title.text == "PC1" and fig.layout.yaxis.title.text == "PC2"
    assert fig.layout.title.text == "T"


def test_embedding_figure_3d_row_paired_and_no_lines():
    x, y = _cones(7, d=5, seed=9)
    fig = viz.embedding_figure(x, y, dim=3, n_lines=100)
    assert all(isinstance(tr, go.Scatter3d) for tr in fig.data) and len(fig.data) == 3
    lines, imgs, caps = fig.data
    assert len(imgs.z) == 7 and len(caps.z) == 7 and len(lines.x) == 3 * 7  # n_lines capped at the captions
    px, py = viz.project_embeddings(x, y, dim=3)
    lx, ly, lz = _arr(lines.x), _arr(lines.y), _arr(lines.z)
    for s in range(7):  # row-paired: caption j with image j
        j = int(np.argmin(np.linalg.norm(py - [lx[3 * s + 1], ly[3 * s + 1], lz[3 * s + 1]], axis=1)))
        np.testing.assert_allclose([lx[3 * s], ly[3 * s], lz[3 * s]], px[j])
    scene = fig.layout.scene
    assert (scene.xaxis.title.text, scene.yaxis.title.text, scene.zaxis.title.text) == ("PC1", "PC2", "PC3")
    no_lines = viz.embedding_figure(x, y, n_lines=0)
    assert [tr.name for tr in no_lines.data] == ["images (7)", "captions (7)"]


# ------------------------------------------------------------------------ gap figures
def test_gap_shift_figure_from_embedding_shift_table():
    x, y = primer.two_cones(20, 8, seed=0)
    table = analysis.embedding_shift(x, y, np.arange(20), shifts=(-0.5, 0, 0.5, 1.0))
    fig = viz.gap_shift_figure(table, title="shift")
    assert [tr.name for tr in fig.data] == ["gap", "R@1 image→text", "R@1 text→image", "loss (τ fixed)"]
    for tr, col in zip(fig.data, ("gap", "r1_i2t", "r1_t2i", "loss")):
        np.testing.assert_allclose(_arr(tr.x), table["shift"]) and np.testing.assert_allclose(_arr(tr.y), table[col])
    assert [tr.xaxis for tr in fig.data] == ["x", "x2", "x2", "x3"]  # three panels
    _titles_nonempty(fig, "xaxis", "xaxis2", "xaxis3", "yaxis", "yaxis2", "yaxis3")
    assert {a.text for a in fig.layout.annotations} >= {"modality gap ‖Δ‖", "R@1 (%)", "contrastive loss"}
    assert len(fig.layout.shapes) == 3  # the shift-0 marker in each panel
    with pytest.raises(VlmkitError, match="needs columns"):
        viz.gap_shift_figure(table.drop(columns="loss"))


def test_gap_bar_figure():
    table = pd.DataFrame({"method": ["pretrained", "clip-ft", "m2mix"], "gap": [0.82, 0.61, 0.4567]})
    fig = viz.gap_bar_figure(table)
    (bar,) = fig.data
    assert list(bar.x) == table["method"].tolist()
    np.testing.assert_allclose(_arr(bar.y), table["gap"])
    assert list(bar.text) == ["0.820", "0.610", "0.457"]
    _titles_nonempty(fig, "xaxis", "yaxis")


# ------------------------------------------------------------------------ mixing figures
def test_slerp_path_figure_holds_every_row():
    rng = np.random.default_rng(10)
    gi, gt = _unit(rng.standard_normal((5, 6))), _unit(rng.standard_normal((6, 6)))
    table = analysis.slerp_neighbours(gi[1], gt[2], gi, gt, lambdas=[0, 0.5, 1], k=4)
    table["relevant"] = ((table["modality"] == "image") & (table["index"] == 1)) | ((table["modality"] == "text") & (table["index"] == 2))
    table["label"] = table["modality"] + "#" + table["index"].astype(str)
    fig = viz.slerp_path_figure(table)
    assert sum(len(tr.x) for tr in fig.data) == len(table) == 12
    for tr in fig.data:
        mod, word = tr.name.split(" (")
        ok = word.startswith("true")
        sub = table[(table["modality"] == mod) & (table["relevant"] == ok)]
        assert len(sub) > 0
        assert sorted(zip(_arr(tr.x), tr.y)) == sorted(zip(sub["lam"].astype(float), sub["rank"]))
        assert set(tr.text) == set(sub["label"])
        assert tr.marker.symbol == {"image": "square", "text": "circle"}[mod]
    names = {tr.name for tr in fig.data}
    assert {"image (true for the query)", "text (true for the query)"} <= names
    assert fig.layout.yaxis.autorange == "reversed"
    _titles_nonempty(fig, "xaxis", "yaxis")


def test_slerp_path_figure_without_relevance_and_bad_table():
    rng = np.random.default_rng(11)
    gt = _unit(rng.standard_normal((4, 5)))
    table = analysis.slerp_neighbours(gt[0], gt[1], None, gt, lambdas=[0, 1], k=3)
    fig = viz.slerp_path_figure(table)
    assert [tr.name for tr in fig.data] == ["text (not true)"] and len(fig.data[0].x) == 6
    assert set(fig.data[0].text) == set(table["index"].astype(str))
    with pytest.raises(VlmkitError, match="table needs"):
        viz.slerp_path_figure(table.drop(columns="similarity"))


def test_hardness_figure_one_histogram_per_kind():
    x, y = primer.two_cones(10, 8, seed=1)
    table = pd.concat([analysis.mixed_negative_hardness(x, y, lam=0.5),
                       analysis.mixed_negative_hardness(x, y, lam=0.8).query("kind != 'original'")])
    fig = viz.hardness_figure(table)
    kinds = sorted(table["kind"].unique())
    assert len(fig.data) == len(kinds) == 3
    for tr, kind in zip(fig.data, kinds):
        v = table.loc[table["kind"] == kind, "similarity"]
        assert tr.name == f"{kind} (mean {v.mean():.3f})"
        np.testing.assert_allclose(np.sort(_arr(tr.x)), np.sort(v))
    assert sum(len(tr.x) for tr in fig.data) == len(table)
    _titles_nonempty(fig, "xaxis", "yaxis")
    with pytest.raises(VlmkitError, match="kind, similarity"):
        viz.hardness_figure(table.drop(columns="kind"))


# ------------------------------------------------------------------------------- tables
def _fmt_ref(v):
    if isinstance(v, float):
        return "–" if np.isnan(v) else f"{v:.4g}"
    return str(v)


def test_table_figure_cells_formatting_and_dropped_columns():
    df = pd.DataFrame({"method": ["a", "b", "c"], "r1": [51.23456, np.nan, 7.0], "n": [1, 2, 3], "empty": [np.nan] * 3})
    fig = viz.table_figure(df, title="R@1 (5k test, one-to-one)", max_rows=2)
    (tab,) = fig.data
    assert list(tab.header.values) == ["method", "r1", "n"]  # all-empty column dropped
    assert [list(c) for c in tab.cells.values] == [["a", "b"], ["51.23", "–"], ["1", "2"]]
    assert fig.layout.title.text == "R@1 (5k test, one-to-one)"


def test_table_figure_transposes_wide_short_tables():
    cols = {f"metric {k}": [0.1 * k, 0.2 * k] for k in range(10)}
    df = pd.DataFrame({"method": ["x", "y"], **cols})
    fig = viz.table_figure(df, title="wide")
    (tab,) = fig.data
    assert list(tab.header.values) == ["method →", "x", "y"]
    assert list(tab.cells.values[0]) == list(cols)
    assert list(tab.cells.values[1]) == [_fmt_ref(v[0]) for v in cols.values()]
    assert list(tab.cells.values[2]) == [_fmt_ref(v[1]) for v in cols.values()]
    # forced off, and not automatic for long tables
    assert list(viz.table_figure(df, title="w", transpose=False).data[0].header.values) == list(df.columns)
    long = pd.concat([df] * 7, ignore_index=True)
    assert len(viz.table_figure(long, title="l").data[0].header.values) == df.shape[1]


def test_table_html_has_title_note_and_rows():
    df = pd.DataFrame({"method": ["pre<trained>", "ft"], "r1": [51.23456, 60.0]})
    out = viz.table_html(df, "R@1 & co", note="protocol: 5k test, one-to-one labels <exact>")
    assert "<h2>R@1 &amp; co</h2>" in out
    assert "<p>protocol: 5k test, one-to-one labels &lt;exact&gt;</p>" in out
    assert "pre&lt;trained&gt;" in out and "51.23" in out and "60" in out and 'class="dataframe vlmkit"' in out
    assert out.count("<tr") == 3  # header + 2 rows
    assert "<p>" not in viz.table_html(df, "t")


# ------------------------------------------------------------------------------- save_figure
@pytest.fixture
def png_state(monkeypatch):
    """A fresh 'PNG not tried yet' state and BROWSER_PATH restored afterwards."""
    monkeypatch.setattr(viz_io, "_PNG_STATE", {"ok": None, "note": ""})
    monkeypatch.delenv("BROWSER_PATH", raising=False)
    monkeypatch.delenv("VLMKIT_NO_PNG", raising=False)


def _fig():
    return go.Figure(go.Scatter(x=[1, 2, 3], y=[4, 5, 6], name="unique-trace-name-42"))


def _forbid_png(monkeypatch):
    calls = []
    monkeypatch.setattr(go.Figure, "write_image", lambda self, *a, **k: calls.append(a))
    return calls


def _no_tmp(folder: Path):
    assert not [f for f in os.listdir(folder) if f.endswith(".tmp")]


def test_save_figure_html_and_shared_plotlyjs_without_png(tmp_path, png_state, monkeypatch):
    calls = _forbid_png(monkeypatch)
    out = viz.save_figure(_fig(), tmp_path / "figs" / "a", png=False)
    folder = tmp_path / "figs"
    assert out == {"html": folder / "a.html"} and not (folder / "a.png").exists() and not calls
    html = (folder / "a.html").read_text()
    assert 'src="plotly.min.js"' in html and "unique-trace-name-42" in html
    assert len(html) < 100_000  # the library is not inlined
    js = folder / "plotly.min.js"
    assert js.stat().st_size > 1_000_000 and "plotly" in js.read_text()[:2000].lower()
    # a second figure in the same folder shares the same plotly.min.js (not rewritten)
    import plotly.offline

    monkeypatch.setattr(plotly.offline, "get_plotlyjs", lambda: pytest.fail("plotly.min.js rewritten"))
    viz.save_figure(_fig(), folder / "b", png=False)
    assert sorted(os.listdir(folder)) == ["a.html", "b.html", "plotly.min.js"]
    _no_tmp(folder)


@pytest.mark.parametrize("value", ["1", "true"])
def test_save_figure_respects_vlmkit_no_png(tmp_path, png_state, monkeypatch, value):
    calls = _forbid_png(monkeypatch)
    monkeypatch.setenv("VLMKIT_NO_PNG", value)
    out = viz.save_figure(_fig(), tmp_path / "a")
    assert set(out) == {"html"} and not calls and not (tmp_path / "a.png").exists()


def test_save_figure_tries_png_by_default(tmp_path, png_state, monkeypatch):
    calls = _forbid_png(monkeypatch)
    monkeypatch.setenv("VLMKIT_NO_PNG", "0")
    viz.save_figure(_fig(), tmp_path / "a", width=300, height=200)
    assert len(calls) == 1 and calls[0][0].endswith(".tmp")  # written to a temporary name first


def test_save_figure_failed_png_export_is_noted_once_and_skipped(tmp_path, png_state, monkeypatch, capsys):
    calls = []

    def broken(self, path, *a, **k):
        calls.append(path)
        Path(path).write_bytes(b"half a png")
        raise RuntimeError("no Chromium here\nlong traceback")

    monkeypatch.setattr(go.Figure, "write_image", broken)
    out = viz.save_figure(_fig(), tmp_path / "a")
    assert set(out) == {"html"} and (tmp_path / "a.html").is_file() and not (tmp_path / "a.png").exists()
    assert not viz.png_available()
    note = capsys.readouterr().out
    assert note.count("note: PNG export unavailable") == 1 and "RuntimeError: no Chromium here" in note
    assert "long traceback" not in note
    viz.save_figure(_fig(), tmp_path / "b")  # not tried again, no second note
    assert len(calls) == 1 and capsys.readouterr().out == ""
    _no_tmp(tmp_path)


def test_save_figure_html_write_is_atomic(tmp_path, png_state, monkeypatch):
    viz.save_figure(go.Figure(go.Scatter(x=[1], y=[1], name="first-version")), tmp_path / "a", png=False)
    before = (tmp_path / "a.html").read_text()
    real = pathlib.Path.write_text

    def dies_halfway(self, data, *a, **k):
        real(self, data[: len(data) // 2], *a, **k)
        raise OSError("disk full")

    monkeypatch.setattr(pathlib.Path, "write_text", dies_halfway)
    with pytest.raises(OSError, match="disk full"):
        viz.save_figure(go.Figure(go.Scatter(x=[2], y=[2], name="second-version")), tmp_path / "a", png=False)
    monkeypatch.setattr(pathlib.Path, "write_text", real)
    assert (tmp_path / "a.html").read_text() == before  # the old file intact, never half-written
    _no_tmp(tmp_path)


@pytest.mark.timeout(180)
@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="PNG export needs /usr/bin/chromium")
def test_save_figure_png_with_chromium(tmp_path, png_state):
    # slow-tolerant: kaleido starts a Chromium (a few seconds on 2 cores)
    out = viz.save_figure(_fig(), tmp_path / "a", png=True, width=320, height=240)
    if "png" not in out:
        pytest.skip(f"PNG export failed here: {viz_io._PNG_STATE['note']}")
    data = out["png"].read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (w, h) in {(320, 240), (640, 480)}  # 1x or 2x scale
    assert viz.png_available()
    # by default the PNG has the figure's own layout size (a tall table is not cut at 600 px)
    tall = go.Figure(layout={"height": 900, "width": 400})
    data = viz.save_figure(tall, tmp_path / "tall", png=True)["png"].read_bytes()
    assert (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")) in {(400, 900), (800, 1800)}
    _no_tmp(tmp_path)


def test_table_figure_is_as_tall_as_its_wrapped_rows_and_takes_column_widths():
    import pandas as pd

    from vlmkit.viz.tables import table_height

    short = pd.DataFrame({"#": [1, 2], "claim": ["a", "b"]})
    long = pd.DataFrame({"#": [1, 2], "claim": ["word " * 200, "b"]})  # 1,000 characters wrap over many lines
    h_short = viz.table_figure(short, title="t", widths=[0.3, 4]).layout.height
    h_long = viz.table_figure(long, title="t", widths=[0.3, 4]).layout.height
    assert h_long > h_short + 19 * 5 and list(viz.table_figure(long, title="t", widths=[0.3, 4]).data[0].columnwidth) == [0.3, 4]
    # hand count: 800 px over widths 1:1 → 400 px = 55 characters a line (7 px each, less 2): 110 characters → 2 lines
    assert table_height([["x" * 110], ["y"]], [1, 1]) == 160 + 19 * 2 + 10
    assert table_height([["x" * 110], ["y"]], [1, 1], cap=100) == 100
    with pytest.raises(VlmkitError, match="2 widths for 3 columns"):
        viz.table_figure(pd.DataFrame({"a": [1], "b": [2], "c": [3]}), title="t", transpose=False, widths=[1, 2])


def test_table_figure_keeps_rows_when_the_first_column_is_not_a_key():
    import pandas as pd

    from vlmkit.viz import table_figure

    wide = pd.DataFrame({"split": ["s"] * 3, **{f"c{i}": [1.0, 2.0, 3.0] for i in range(9)}})
    tab = table_figure(wide, title="t").data[0]
    assert tab.header.values[0] == "split" and len(tab.cells.values) == 10 and len(tab.cells.values[0]) == 3


def test_display_bundle_png_scaled_plotly_json_capped_no_html(tmp_path):
    import base64
    import io
    import json

    from PIL import Image

    Image.new("RGB", (1000, 500), (0, 0, 255)).save(tmp_path / "f.png")
    b = viz.display_bundle(_fig(), tmp_path / "f.png", "figure f", max_width=400)
    assert set(b) == {"text/plain", "image/png", viz_io.PLOTLY_MIME} and b["text/plain"] == "figure f"
    with Image.open(io.BytesIO(base64.b64decode(b["image/png"]))) as im:
        assert im.size == (400, 200) and im.convert("RGB").getpixel((10, 10)) == (0, 0, 255)
    assert b[viz_io.PLOTLY_MIME]["data"][0]["y"] == [4, 5, 6]
    # small images are not scaled up; an oversized interactive JSON is left out, a figure without PNG has none
    Image.new("RGB", (120, 80)).save(tmp_path / "s.png")
    with Image.open(io.BytesIO(base64.b64decode(viz.display_bundle(_fig(), tmp_path / "s.png", "s")["image/png"]))) as im:
        assert im.size == (120, 80)
    size = len(json.dumps(viz_io.plotly_mimedata(_fig())))
    assert set(viz.display_bundle(_fig(), None, "t", max_json_bytes=size - 1)) == {"text/plain"}
    assert set(viz.display_bundle(_fig(), None, "t", max_json_bytes=size)) == {"text/plain", viz_io.PLOTLY_MIME}
    assert set(viz.display_bundle(_fig(), None, "t", interactive=False)) == {"text/plain"}


def test_fig3_figure_shows_sigma2_beside_the_score_control():
    import torch

    from vlmkit.vacsr import fig3_report
    from vlmkit.viz import fig3_figure

    g = torch.Generator().manual_seed(0)
    n = 40
    scores = torch.randn(n, n, generator=g) + 3 * torch.eye(n)
    unc = torch.rand(n, n, generator=g)
    labels = torch.eye(n, dtype=torch.bool)
    rep = fig3_report(scores, unc, labels, n_boot=20)
    fig = fig3_figure(rep, "i2t")
    assert len(fig.data) == 2  # σ² and the −score control
    s = rep["summary"].set_index(["direction", "protocol", "source", "binning"])
    for trace, source in zip(fig.data, ("sigma2", "-score")):
        b = rep["bins"]
        b = b[(b.direction == "i2t") & (b.protocol == "labels") & (b.binning == "width") & (b.source == source) & (b["count"] > 0)]
        assert list(trace.y) == pytest.approx(list(100 * b["r1"]))
        assert f"{s.loc[('i2t', 'labels', source, 'width'), 'pearson_r']:.3f}" in trace.name
    assert "one-to-one labels" in fig.layout.title.text
    with pytest.raises(VlmkitError, match="exact truth"):
        fig3_figure(rep, "i2t", protocol="exact truth")  # no truth was given


def test_image_grid_shows_each_image_with_its_captions_by_specificity():
    import base64
    import io as _io
    import re

    from PIL import Image

    from vlmkit.data import make_shapes
    from vlmkit.viz import image_grid_html
    from vlmkit.viz.images import SPEC_COLOURS

    ds = make_shapes("test", n_images=6)
    html = image_grid_html(ds, [0, 3], columns=2, size=96, title="t")
    uris = re.findall(r"src='data:image/png;base64,([^']+)'", html)
    assert len(uris) == 2
    img = Image.open(_io.BytesIO(base64.b64decode(uris[1])))
    assert img.size == (96, 96)
    small = np.asarray(img.resize((64, 64), Image.NEAREST))
    assert np.array_equal(small, np.asarray(ds.load_image(3).convert("RGB")))  # the image itself, scaled
    for c in list(ds.captions_of(0)) + list(ds.captions_of(3)):
        assert ds.captions[c] in html
    spec4 = ds.captions[ds.captions_of(3)[0]]
    assert f"<li style='color:{SPEC_COLOURS[4]}'>{spec4}" in html
    with pytest.raises(VlmkitError, match="out of range"):
        image_grid_html(ds, [6])


def test_false_negative_captions_are_the_true_captions_of_other_images():
    from vlmkit.data import make_shapes
    from vlmkit.viz import false_negative_captions_html

    ds = make_shapes("test", n_images=60, preset="stress")
    counts = ds.false_negatives().sum(axis=1)
    html = false_negative_captions_html(ds, None, k=1000)
    best = int(np.argmax(counts))
    assert f"<b>Image {best}</b>" in html and f"{counts[best]} captions of other images" in html
    for c in np.flatnonzero(ds.false_negatives()[best]):
        assert f"written for image {int(ds.caption_image[c])}" in html
    one = false_negative_captions_html(ds, best, k=2)
    assert f"and {counts[best] - 2} more" in one


def test_training_curves_plot_every_method_and_the_vacsr_terms():
    import pandas as pd

    from vlmkit.viz import training_curves

    h = {"contrastive": pd.DataFrame({"epoch": [1, 2], "train_loss": [4.0, 2.6], "rsum": [509.4, 529.1],
                                      "val_protocol": ["full 200x1000"] * 2}),
         "m2mix": pd.DataFrame({"epoch": [1, 2], "train_loss": [4.2, 2.9], "rsum": [500.0, 520.5]})}
    v = pd.DataFrame({"epoch": [0, 1], "total": [-108.5, -141.0], "recon": [-124.6, -156.3]})
    fig = training_curves(h, v)
    by = {(t.name, t.xaxis): t for t in fig.data}
    assert list(by[("contrastive", "x")].y) == [4.0, 2.6] and list(by[("m2mix", "x2")].y) == [500.0, 520.5]
    assert list(by[("VACSR recon", "x3")].y) == [-124.6, -156.3]
    assert "full 200x1000" in fig.layout.title.text  # the validation protocol is named
    assert len(training_curves(h).data) == 4  # no VACSR panel without its history
    with pytest.raises(VlmkitError, match="rsum"):
        training_curves({"bad": pd.DataFrame({"epoch": [1], "train_loss": [1.0]})})
