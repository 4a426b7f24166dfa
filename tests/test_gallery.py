"""The galleries of notebooks 03–06 (vlmkit.viz.gallery): one <img class="vlmkit-thumb"> per
shown image, marks that match the truth of a hand-checked pair, σ² order, brute-force
neighbours, errors naming the parameter, and widgets that re-render on a change."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from vlmkit.data import make_shapes
from vlmkit.utils import VlmkitError
from vlmkit.viz import gallery as G

# Hand-checked on make_shapes("test", n_images=40) (images looked at): image 0 shows two shapes
# (a blue hexagon, a blue square) on a checkered background; caption 59, written for image 11,
# reads "two shapes on a checkered background" — true of image 0, labelled negative: a false
# negative. Image 3 shows three shapes on white: caption 59 is a true negative for it.
FN_IMAGE, FN_CAPTION, FN_WRITTEN_FOR, TN_IMAGE = 0, 59, 11, 3


@pytest.fixture(scope="module")
def ds():
    d = make_shapes("test", n_images=40)
    assert d.captions[FN_CAPTION] == "two shapes on a checkered background" and d.caption_image[FN_CAPTION] == FN_WRITTEN_FOR
    return d


@pytest.fixture(scope="module")
def feats(ds):
    g = torch.Generator().manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(ds.num_images, 8, generator=g), dim=1)
    pos = torch.as_tensor(ds.positives()).float()
    txt = torch.nn.functional.normalize(pos.T @ img + 0.3 * torch.randn(ds.num_captions, 8, generator=g), dim=1)
    return img.double().numpy(), txt.double().numpy()


def _imgs(html: str) -> int:
    return len(re.findall(r"<img class='vlmkit-thumb'", html))


def _cards(html: str) -> list[str]:
    """The HTML of each gallery item, in order."""
    return html.split("class='vlmkit-item'")[1:]


def _hand_scores(ds):
    """Scores where image 0's top three captions are its own caption 0, caption 59 and a caption of
    image 3, and caption 59's top three images are 11 (its own), 0 and 3; the rest lower."""
    rng = np.random.default_rng(0)
    S = rng.uniform(0, 0.5, (ds.num_images, ds.num_captions))
    own_tn = int(ds.captions_of(TN_IMAGE)[0])
    S[FN_IMAGE, [int(ds.captions_of(FN_IMAGE)[0]), FN_CAPTION, own_tn]] = [0.9, 0.8, 0.7]
    S[[FN_WRITTEN_FOR, FN_IMAGE, TN_IMAGE], FN_CAPTION] = [0.95, 0.8, 0.7]
    return S, rng.uniform(0, 1, S.shape), own_tn


def test_query_marks_match_the_hand_checked_pair_i2t_and_t2i(ds):
    S, U, own_tn = _hand_scores(ds)
    t = G.query_table(ds, S, U, "i2t", FN_IMAGE, k=3)
    assert t["index"].tolist() == [int(ds.captions_of(FN_IMAGE)[0]), FN_CAPTION, own_tn]
    assert t["mark"].tolist() == ["labelled positive", "false negative", "negative"]
    assert t["uncertainty"].tolist() == pytest.approx(U[FN_IMAGE, t["index"]].tolist())
    html = G.query_results_html(ds, t, "i2t", FN_IMAGE)
    assert _imgs(html) == 1  # the query image; the results are captions (text)
    cards = _cards(html)[1:]
    assert len(cards) == 3 and "false negative" in cards[1] and "caption 59" in cards[1] and "checkered" in cards[1]
    assert G.MARKS["false negative"] in cards[1] and G.MARKS["negative"] in cards[2] and "#3 · negative" in cards[2]
    assert f"σ² {U[FN_IMAGE, FN_CAPTION]:.4g}" in cards[1] and "score 0.8" in cards[1]

    t2 = G.query_table(ds, S, None, "t2i", FN_CAPTION, k=3)
    assert t2["index"].tolist() == [FN_WRITTEN_FOR, FN_IMAGE, TN_IMAGE]
    assert t2["mark"].tolist() == ["labelled positive", "false negative", "negative"]
    html2 = G.query_results_html(ds, t2, "t2i", FN_CAPTION)
    assert _imgs(html2) == 3 and "σ²" not in html2  # three result images; the query is a caption; no uncertainty given
    assert "alt='image 0'" in _cards(html2)[2] and "false negative" in _cards(html2)[2]


def test_bad_query_direction_and_index_raise_naming_the_parameter(ds, feats):
    S, U, _ = _hand_scores(ds)
    with pytest.raises(VlmkitError, match=r"query=40: expected an image index in \[0, 40\)"):
        G.query_table(ds, S, U, "i2t", 40)
    with pytest.raises(VlmkitError, match=r"query=-1: expected a caption index in \[0, 200\)"):
        G.query_results_html(ds, G.query_table(ds, S, U, "t2i", 0), "t2i", -1)
    with pytest.raises(VlmkitError, match="direction='x2y'"):
        G.query_table(ds, S, U, "x2y", 0)
    with pytest.raises(VlmkitError, match=r"scores: shape \(3, 3\)"):
        G.query_table(ds, np.zeros((3, 3)), None, "i2t", 0)
    with pytest.raises(VlmkitError, match="query=99"):
        G.slerp_path_table(ds, *feats, 99, [0, 1])
    with pytest.raises(VlmkitError, match="index=200"):
        G.neighbours_html(ds, *feats, "text", 200)


def test_false_negative_gallery_is_sorted_by_uncertainty_with_true_negatives_for_contrast(ds):
    S, U, _ = _hand_scores(ds)
    t = G.false_negative_table(ds, S, U, n=8, n_contrast=4)
    fn, tn = t[t.kind == "false negative"], t[t.kind == "true negative"]
    FN, P = ds.false_negatives(), ds.positives()
    assert len(fn) == 8 and len(tn) == 4 and (fn.total == FN.sum()).all() and (tn.total == (~P).sum()).all()
    assert all(FN[r.image, r.caption] for r in fn.itertuples()) and not any(P[r.image, r.caption] for r in tn.itertuples())
    assert (np.diff(fn.uncertainty) <= 0).all() and (np.diff(tn.uncertainty) <= 0).all()
    assert fn.uncertainty.tolist() == pytest.approx(np.sort(U[FN])[::-1][:8].tolist())  # brute force: the 8 highest σ²
    assert tn.uncertainty.tolist() == pytest.approx(np.sort(U[~P])[::-1][:4].tolist())
    assert (fn.written_for != fn.image).all()
    html = G.false_negative_gallery_html(ds, S, U, n=8, n_contrast=4, title="fn")
    assert _imgs(html) == 12 and f"of {int(FN.sum())}" in html and "highest σ²" in html
    assert f"σ² over all {U.size} pairs spans {U.min():.4g} – {U.max():.4g}" in html
    first = _cards(html)[0]
    assert f"alt='image {fn.image.iloc[0]}'" in first and f"caption {fn.caption.iloc[0]} " in first
    by_score = G.false_negative_table(ds, S, None, n=5, n_contrast=0)  # no uncertainty: by score
    assert by_score.score.tolist() == pytest.approx(np.sort(S[FN])[::-1][:5].tolist()) and by_score.uncertainty.isna().all()
    assert "highest score" in G.false_negative_gallery_html(ds, S, None, n=5, n_contrast=0)


def test_labels_only_data_gets_a_one_line_note(tmp_path):
    from PIL import Image

    from vlmkit.data import load_dataset

    rows = ["filepath,caption"]
    for i in range(4):
        Image.new("RGB", (8, 8), (60 * i, 0, 0)).save(tmp_path / f"{i}.png")
        rows += [f"{i}.png,a red square number {i}"]
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    csv = load_dataset(f"csv:{tmp_path / 'pairs.csv'}:{tmp_path}", pairs=True)
    assert not csv.has_extended_positives
    note = G.false_negative_gallery_html(csv, np.eye(4))
    assert note.count("\n") == 0 and "one-to-one labels" in note and _imgs(note) == 0
    with pytest.raises(VlmkitError, match="extended positives"):
        G.false_negative_table(csv, np.eye(4))
    t = G.query_table(csv, np.eye(4), None, "t2i", 2, k=2)  # real images from files: thumbnails work
    assert t["mark"].tolist() == ["labelled positive", "negative"] and _imgs(G.query_results_html(csv, t, "t2i", 2)) == 2


def test_slerp_path_truth_and_strip(ds, feats):
    img, txt = feats
    lambdas = np.linspace(0, 1, 11)
    t = G.slerp_path_table(ds, img, txt, 5, lambdas, k=4)
    cap = int(ds.captions_of(5)[0])
    for r in t.itertuples():  # brute force, pair by pair
        want = ds.positives([r.index], [cap])[0, 0] if r.modality == "image" else ds.positives([5], [r.index])[0, 0]
        assert r.relevant == bool(want)
    html = G.slerp_path_html(ds, t, [0.0, 0.52, 1.0])
    rows = t[np.isclose(t.lam, 0) | np.isclose(t.lam, 0.5) | np.isclose(t.lam, 1)]
    assert _imgs(html) == 1 + (rows.modality == "image").sum()  # the query image + each image item shown
    assert "λ = 0.50" in html and "λ = 0.60" not in html
    assert len(_cards(html)) == 2 + len(rows)
    default = G.slerp_path_html(ds, t, max_rows=3)
    assert [m for m in re.findall(r"λ = (\d\.\d\d)</b>", default)] == ["1.00", "0.50", "0.00"]


def test_neighbours_are_the_brute_force_nearest_and_cross_modal_truth_is_marked(ds, feats):
    img, txt = feats
    html = G.neighbours_html(ds, img, txt, "image", 7, k=4)
    cards = _cards(html)
    near_img = [j for j in np.argsort(-(img @ img[7])) if j != 7][:4]
    near_cap = np.argsort(-(txt @ img[7]))[:4]
    assert "alt='image 7'" in cards[0] and _imgs(html) == 5
    assert [re.search(r"alt='image (\d+)'", c).group(1) for c in cards[1:5]] == [str(j) for j in near_img]
    for c, j in zip(cards[5:9], near_cap):
        assert f"caption {j}<" in c and (G.TRUE_COLOUR if ds.positives([7], [j])[0, 0] else G.FALSE_COLOUR) in c
    ex = G.embedding_examples_html(ds, img, txt, [1, 2], [3], k=3)
    assert _imgs(ex) == 2 * (1 + 3) + 3  # two image panels (itself + 3 images), one caption panel (3 images)
    assert G.Thumbs(ds, 500).size == 96


def test_widgets_rerender_on_a_change(ds, feats):
    img, txt = feats
    ex = G.slerp_explorer(ds, img, txt, np.linspace(0, 1, 5), query=2, k=3)
    at_mid = ex.panel.value
    ex.controls["lam"].value = 1.0
    assert ex.panel.value != at_mid and "λ = 1.00" in ex.panel.value and "λ = 0.50" not in ex.panel.value
    ex.controls["query"].value = 9
    assert "alt='image 9'" in ex.panel.value

    S, U, _ = _hand_scores(ds)
    qp = G.query_picker(ds, lambda m: (S, U if m == "vacsr" else None), ["vacsr", "cosine"], query=FN_IMAGE, k=3)
    assert "false negative" in qp.panel.value and "σ²" in qp.panel.value
    qp.controls["method"].value = "cosine"
    assert "σ²" not in qp.panel.value
    qp.controls["query"].value = 1000
    assert "query=1000" in qp.panel.value and _imgs(qp.panel.value) == 0  # the error, shown in the panel

    keep = np.arange(0, 40, 2)
    caps = np.flatnonzero(np.isin(ds.caption_image, keep))
    em = G.embedding_explorer(ds, img, txt, keep, caps, k=3)
    (images_trace,) = [tr for tr in em.controls["figure"].data if tr.name.startswith("images")]
    from plotly.callbacks import Points

    images_trace._click_callbacks[0](images_trace, Points(point_inds=[3], xs=[0], ys=[0], trace_name="images", trace_index=1), None)
    assert "alt='image 6'" in _cards(em.panel.value)[0]  # point 3 of the plotted subset is image keep[3] = 6
    (caps_trace,) = [tr for tr in em.controls["figure"].data if tr.name.startswith("captions")]
    caps_trace._hover_callbacks[0](caps_trace, Points(point_inds=[0], xs=[0], ys=[0], trace_name="captions", trace_index=2), None)
    assert f"caption {caps[0]}<" in _cards(em.panel.value)[0]


def test_notebooks_03_to_06_show_and_save_the_galleries(tmp_path, monkeypatch):
    """The code cells of 03–06 on a tiny run (in-process, headless): each gallery is saved under
    figures/ with its thumbnails; 05/06 show false negatives (the embedded data has truth)."""
    from test_notebooks import _run_sources, _tiny_run

    from vlmkit import workbook as wb

    monkeypatch.setattr(wb, "show", lambda fig, run, name: {})  # no figure export here
    run = _tiny_run(tmp_path, "shapes", 12)
    _run_sources(["03", "04", "05", "06"], run)
    figs = run / "figures"
    counts = {p.stem: _imgs(p.read_text()) for p in figs.glob("*.html")}
    assert counts["03_neighbours"] == 3 * 6 + 5  # three images (+5 nearest images each), one caption (5 images)
    assert counts["04_slerp_strip"] >= 1 and "λ = 1.00" in (figs / "04_slerp_strip.html").read_text()
    assert counts["05_query"] == 1 and "labelled positive" in (figs / "05_query.html").read_text()
    assert counts["05_false_negatives_vacsr"] > 0 and "highest σ²" in (figs / "05_false_negatives_vacsr.html").read_text()
    assert "highest score" in (figs / "06_false_negatives_pretrained.html").read_text()
    assert "highest σ²" in (figs / "06_false_negatives_vacsr.html").read_text()
