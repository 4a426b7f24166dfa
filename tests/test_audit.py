"""The data audit (issue #23): rankings against brute force, verdicts round-tripping into
evaluation by a hand computation, the review page and widget, the CLI, and real COCO files."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from scipy.stats import rankdata

from vlmkit import audit
from vlmkit.audit.core import DIRECTIONS
from vlmkit.data.base import ArrayImages, PairDataset
from vlmkit.utils import VlmkitError

ROOT = Path(__file__).resolve().parents[1]
COCO_MINI = ROOT.parent / "shared" / "data" / "coco-mini"


def _dataset(n: int, caption_image, name: str = "tiny") -> PairDataset:
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 255, size=(n, 8, 8, 3), dtype=np.uint8)
    ci = np.asarray(caption_image)
    return PairDataset(name, ArrayImages(imgs), [f"caption {j} of image {ci[j]}" for j in range(len(ci))], ci,
                       [f"img{i}" for i in range(n)])


def _random_case(n=13, m=40, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    ci = np.concatenate([np.arange(n), rng.integers(0, n, m - n)])  # every image has ≥ 1 caption
    rng.shuffle(ci)
    img = torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=1)
    txt = torch.nn.functional.normalize(torch.randn(m, d, generator=g), dim=1)
    return _dataset(n, ci), img, txt


# --------------------------------------------------------------------------- ranking vs brute force


@pytest.mark.parametrize("block", [1, 4, 13])
def test_shortlist_is_the_brute_force_top_k_per_image_and_per_caption(block):
    ds, img, txt = _random_case()
    n, m, k = ds.num_images, ds.num_captions, 3
    sc = audit.Scorer.from_features("cos", img, txt)
    codes, rl, cl = audit.shortlist(sc, ds.caption_image, k, block=block)
    S = (img @ txt.T).numpy().astype(np.float64)
    lab = ds.labels()
    want = set()
    masked = np.where(lab, -np.inf, S)
    for i in range(n):
        want |= {i * m + j for j in np.argsort(-masked[i])[:k] if np.isfinite(masked[i, j])}
    for j in range(m):
        want |= {i * m + j for i in np.argsort(-masked[:, j])[:k] if np.isfinite(masked[i, j])}
    assert set(codes.tolist()) == want and np.all(np.diff(codes) > 0)
    assert not lab.reshape(-1)[codes].any()  # never a labelled pair
    np.testing.assert_allclose(rl, np.log(np.exp(S / 0.05).sum(1)), rtol=1e-5)
    np.testing.assert_allclose(cl, np.log(np.exp(S / 0.05).sum(0)), rtol=1e-5)


def test_audit_columns_and_combined_rank_match_a_brute_force_computation():
    ds, img, txt = _random_case()
    n, m = ds.num_images, ds.num_captions
    g = torch.Generator().manual_seed(1)
    other = torch.randn(n, m, generator=g)
    unc = torch.rand(n, m, generator=g)
    res = audit.audit_scores(ds, [audit.Scorer.from_features("cos", img, txt), audit.Scorer.from_matrix("mat", other, unc)], top_k=2)
    S = (img @ txt.T).numpy()
    ci = ds.caption_image
    for task, t in res.tables.items():
        i, j = t.image.to_numpy().copy(), t.caption.to_numpy().copy()
        np.testing.assert_allclose(t["score:cos"], S[i, j], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(t["score:mat"], other.numpy()[i, j])
        np.testing.assert_allclose(t["sigma2:mat"], unc.numpy()[i, j])
        lse_r, lse_c = np.log(np.exp(S / 0.05).sum(1)), np.log(np.exp(S / 0.05).sum(0))
        np.testing.assert_allclose(t["loss:cos"], 0.5 * (lse_r[i] + lse_c[j]) - S[i, j] / 0.05, rtol=1e-4)
        for r in range(len(t)):  # the caption against the mean of the image's other captions
            others = [c for c in np.flatnonzero(ci == i[r]) if c != j[r]]
            want = np.nan if not others else float(torch.nn.functional.normalize(txt[others].sum(0), dim=0) @ txt[j[r]])
            np.testing.assert_allclose(t["caption_consistency"].iloc[r], want, rtol=1e-5, atol=1e-6)
        if task == "false_negative":
            np.testing.assert_allclose(t["image_consistency"], (img[i] * img[ci[j]]).sum(1).numpy(), rtol=1e-5, atol=1e-6)
            assert not (ci[j] == i).any() and set(t.found_by) <= {"cos", "mat", "cos+mat"}
        else:
            assert "image_consistency" not in t and sorted(j) == list(range(m)) and (ci[j] == i).all()
        # combined: mean of the percentile ranks of each combined column's suspicion
        cols = res.combine[task]
        assert set(cols) == {"score:cos", "score:mat", "sigma2:mat", "caption_consistency"} | ({"image_consistency"} if task == "false_negative" else set())
        pct = []
        for c in cols:
            v = DIRECTIONS[task][c.split(":")[0]] * t[c].to_numpy(np.float64)
            ok = ~np.isnan(v)
            p = np.full(len(v), np.nan)
            p[ok] = rankdata(v[ok]) / ok.sum()
            pct.append(p)
        np.testing.assert_allclose(t.combined, np.nanmean(np.vstack(pct), axis=0), rtol=1e-9)
        assert (np.diff(t.combined.to_numpy()) <= 0).all() and list(t["rank"]) == list(range(1, len(t) + 1))


def test_vacsr_adapter_scorer_equals_score_all():
    from vlmkit.vacsr import VACSRAdapter, VACSRConfig, score_all

    ds, img, txt = _random_case(n=7, m=20, d=8)
    torch.manual_seed(0)
    ad = VACSRAdapter(VACSRConfig(dim=8, enc_hidden=(16,), latent_dim=4, dec_hidden=(16,))).eval()
    sc = audit.Scorer.from_adapter("vacsr", ad, img, txt)
    S, U = score_all(ad, img, txt, show_progress=False, device="cpu")
    np.testing.assert_allclose(sc.block(2, 5).numpy(), S[2:5].numpy(), rtol=1e-5, atol=1e-6)
    ii, jj = np.array([0, 6, 3, 3, 1]), np.array([19, 0, 5, 7, 2])
    s, u = sc.pairs(ii, jj)
    np.testing.assert_allclose(s, S.numpy()[ii, jj], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(u, U.numpy()[ii, jj], rtol=1e-5, atol=1e-6)
    res = audit.audit_scores(ds, [audit.Scorer.from_features("cos", img, txt), sc], top_k=2)
    assert "sigma2:vacsr" in res.combine["mismatch"]


def test_audit_refuses_scorers_of_other_data_and_bad_arguments():
    ds, img, txt = _random_case()
    with pytest.raises(VlmkitError, match="13 images × 40 captions"):
        audit.audit_scores(ds, [audit.Scorer.from_features("cos", img[:5], txt)])
    with pytest.raises(VlmkitError, match="unique"):
        audit.audit_scores(ds, [audit.Scorer.from_features("a", img, txt)] * 2)
    with pytest.raises(VlmkitError, match=r"unknown evidence column\(s\) \['score:nope'\]"):
        audit.audit_scores(ds, [audit.Scorer.from_features("a", img, txt)], combine=["score:nope"])
    res = audit.audit_scores(ds, [audit.Scorer.from_features("a", img, txt)], combine=["loss:a"])
    assert res.combine == {"false_negative": ["loss:a"], "mismatch": ["loss:a"]}
    fn = res.false_negatives  # one column: the combined order is that column's suspicion order (low loss first)
    assert (np.diff(fn["loss:a"].to_numpy()) >= 0).all()
    with pytest.raises(VlmkitError, match="top_k"):
        audit.audit_scores(ds, [audit.Scorer.from_features("a", img, txt)], top_k=0)


def test_ranking_quality_by_hand():
    q = audit.ranking_quality(np.array([3.0, 2.0, 1.0, 0.0]), np.array([True, False, True, False]), n_errors=3, ks=(1, 2))
    assert q["P@1"] == 1.0 and q["P@2"] == 0.5 and q["R@2"] == pytest.approx(1 / 3)
    assert q["AUROC"] == pytest.approx(3 / 4) and q["coverage"] == pytest.approx(2 / 3)


def test_measured_on_embedded_data_with_exact_truth():
    """On the embedded data a scorer that knows the truth finds every error first."""
    from vlmkit.data import make_shapes
    from vlmkit.data.shapes import inject_noise

    ds = inject_noise(make_shapes("test", n_images=12, seed=0), 0.3, 0)
    P = torch.as_tensor(ds.positives()).float()
    oracle = audit.Scorer.from_matrix("oracle", P + 0.01 * torch.rand(P.shape, generator=torch.Generator().manual_seed(0)))
    res = audit.audit_scores(ds, [oracle], top_k=3)
    ev = audit.evaluate_audit(ds, res, ks=(5,)).set_index(["task", "column"])
    noisy = ds.caption_meta["noisy"]
    assert ev.loc[("mismatch", "score:oracle"), "AUROC"] == 1.0 and ev.loc[("mismatch", "score:oracle"), "n_errors"] == noisy.sum()
    assert ev.loc[("false_negative", "score:oracle"), "P@5"] == 1.0
    assert ev.loc[("false_negative", "score:oracle"), "n_errors"] == ds.false_negatives().sum()


# --------------------------------------------------------------------------- verdicts → evaluation


def _hand_case():
    """3 images, 2 captions each; i2t mAP@R by hand: before 7/12, after marking (0, c2), (2, c1): 20/27."""
    ds = _dataset(3, [0, 0, 1, 1, 2, 2])
    S = torch.tensor([[0.7, 0.5, 0.8, 0.6, 0.1, 0.0],    # c2 c0 c3 c1: AP@R 1/4 → (1 + 1)/3 = 2/3 with c2
                      [0.0, 0.1, 0.9, 0.8, 0.2, 0.3],    # own captions first: 1
                      [0.8, 0.6, 0.1, 0.0, 0.9, 0.7]])   # c4 c0 c5 c1: 1/2 → (1 + 2/3)/3 = 5/9 with c1
    return ds, S


def test_marking_k_pairs_true_changes_map_at_r_exactly_as_by_hand(tmp_path):
    from vlmkit.metrics import Positives, ranking_metrics

    ds, S = _hand_case()
    before = ranking_metrics(S, Positives.from_dataset(ds))["map_at_r"]
    assert before == pytest.approx((0.25 + 1 + 0.5) / 3) == pytest.approx(7 / 12)
    verdicts = [{"task": "false_negative", "image": 0, "caption": 2, "verdict": "true"},
                {"task": "false_negative", "image_id": "img2", "caption": 1, "verdict": "TRUE"},
                {"task": "false_negative", "image": 1, "caption": 0, "verdict": "false"},
                {"task": "false_negative", "image": 1, "caption": 4, "verdict": "unsure"},
                {"task": "mismatch", "image": 2, "caption": 5, "verdict": "false"}]
    paths = audit.write_decisions(ds, verdicts, tmp_path)
    assert json.loads(paths["extended_positives"].read_text()) == {"img0": [2], "img2": [1]}
    rec = json.loads(paths["decisions"].read_text())
    assert rec["counts"] == {"true": 2, "false": 2, "unsure": 1} and rec["mismatched"] == [["img2", 5]]
    assert list(audit.mismatched_captions(rec["decisions"])) == [5]
    ds2 = ds.with_extended_positives(paths["extended_positives"])
    after = ranking_metrics(S, Positives.from_dataset(ds2))["map_at_r"]
    assert after == pytest.approx((2 / 3 + 1 + 5 / 9) / 3) == pytest.approx(20 / 27)
    tab = audit.reevaluate(ds, audit.Scorer.from_matrix("m", S), paths["extended_positives"]).set_index(["direction", "positives"])
    assert tab.loc[("i2t", "before: one-to-one labels"), "mAP@R"] == pytest.approx(7 / 12)
    assert tab.loc[("i2t", "after: one-to-one labels ∪ reviewed positives"), "mAP@R"] == pytest.approx(20 / 27)
    # a second review on top keeps the first one's positives (one file holds them all)
    paths = audit.write_decisions(ds2, [{"task": "false_negative", "image": 1, "caption": 4, "verdict": "true"}], tmp_path / "b")
    assert json.loads(paths["extended_positives"].read_text()) == {"img0": [2], "img1": [4], "img2": [1]}


def test_decisions_are_checked(tmp_path):
    ds, _ = _hand_case()
    with pytest.raises(VlmkitError, match="record 0.*'maybe' is not a verdict"):
        audit.write_decisions(ds, [{"image": 0, "caption": 2, "verdict": "maybe"}], tmp_path)
    with pytest.raises(VlmkitError, match="image id 'nope'"):
        audit.write_decisions(ds, [{"image_id": "nope", "caption": 2, "verdict": "true"}], tmp_path)
    with pytest.raises(VlmkitError, match="outside 3 images × 6 captions"):
        audit.write_decisions(ds, [{"image": 0, "caption": 9, "verdict": "true"}], tmp_path)
    paths = audit.write_decisions(ds, [{"image": 0, "caption": 2, "verdict": "true"}], tmp_path)
    other = _dataset(3, [0, 1, 1, 1, 2, 2], name="other")
    with pytest.raises(VlmkitError, match="refusing"):
        audit.read_decisions(paths["decisions"], other)
    assert audit.read_decisions(paths["decisions"], ds)[0]["image_id"] == "img0"


# --------------------------------------------------------------------------- review page and widget


def _decoded_thumbs(page: str) -> list[Image.Image]:
    uris = re.findall(r"<img class='vlmkit-thumb' src='data:image/(?:png|jpeg);base64,([^']+)'", page)
    return [Image.open(io.BytesIO(base64.b64decode(u))) for u in uris]


def test_review_page_shows_thumbnails_captions_and_every_scorer(tmp_path):
    ds, img, txt = _random_case()
    res = audit.audit_scores(ds, [audit.Scorer.from_features("cos", img, txt)], top_k=2)
    paths = audit.write_outputs(ds, res, tmp_path, n_review=4)
    page = paths["review"].read_text()
    thumbs = _decoded_thumbs(page)
    # per false-negative row: the image and the caption's own image; per mismatch row: the image
    assert len(thumbs) == 4 * 2 + 4 and all(t.size[0] > 0 for t in thumbs)
    assert page.count("class='vlmkit-cand'") == 8 and "Download decisions.json" in page
    top = res.false_negatives.iloc[0]
    assert top.caption_text in page and "score:cos" in page and "caption_consistency" in page and "loss:cos" in page
    assert not re.search(r"(src|href)=['\"]https?://", page)  # offline
    meta = json.loads(re.search(r"id='vlmkit-meta'>(.*?)</script>", page).group(1))
    assert meta["fingerprint"] == ds.fingerprint()
    table = pd.read_csv(paths["csv"])
    assert len(table) == len(res.false_negatives) + ds.num_captions and set(table.task) == {"false_negative", "mismatch"}
    manifest = json.loads(paths["manifest"].read_text())
    assert manifest["rule"] == audit.RULE and manifest["scorers"] == ["cos"]
    if audit.parquet_available():
        pd.testing.assert_frame_equal(pd.read_parquet(paths["parquet"]), table, check_dtype=False)
    else:
        assert "parquet" in manifest["note"]


def test_review_widget_marks_and_saves_at_once(tmp_path):
    pytest.importorskip("ipywidgets")
    from vlmkit.audit.widget import ReviewWidget

    ds, S = _hand_case()
    res = audit.audit_scores(ds, [audit.Scorer.from_matrix("m", S)], top_k=2)
    w = ReviewWidget(ds, {t: d.head(3) for t, d in res.tables.items()}, tmp_path, ["score:m"], per_page=2)
    box = w.widget
    assert w.n_pages == 3 and len(w._body.children) == 2 and "vlmkit-thumb" in box.children[1].children[0].children[0].value
    first = w.rows[0]
    toggle = w._body.children[0].children[1]
    toggle.value = "true"  # what a click does
    pos = json.loads((tmp_path / "extended_positives.json").read_text())
    assert pos == {str(first.image_id): [int(first.caption)]}
    w.go(2)
    assert len(w._body.children) == 2 and "page 3 / 3" in w._status.value
    w.mark(first.task, first.image, first.caption, "")
    assert json.loads((tmp_path / "extended_positives.json").read_text()) == {}


# --------------------------------------------------------------------------- CLI and real data


def test_cli_audit_on_the_embedded_default_then_applies_verdicts(tmp_path, monkeypatch, capsys):
    from vlmkit.cli import main

    monkeypatch.setenv("VLMKIT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    rc = main(["audit", "shapes", "--test-images", "10", "--noise-ratio", "0.3", "--top-k", "2", "--n-review", "5",
               "--out", str(out), "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    table = pd.read_csv(out / "candidates.csv")
    assert {"score:zero-shot", "loss:zero-shot", "caption_consistency", "combined", "rank"} <= set(table.columns)
    assert (table[table.task == "mismatch"].shape[0]) == 50
    assert len(_decoded_thumbs((out / "review.html").read_text())) == 5 * 2 + 5
    top = table[table.task == "false_negative"].iloc[0]
    dec = tmp_path / "decisions.json"
    from vlmkit.audit.cli import load_data

    ds = load_data("shapes", None, 10, 0, 0.3)
    dec.write_text(json.dumps({"fingerprint": ds.fingerprint(), "decisions": [
        {"task": "false_negative", "image": int(top.image), "caption": int(top.caption), "verdict": "true"}]}))
    rc = main(["audit", "shapes", "--test-images", "10", "--noise-ratio", "0.3", "--out", str(out), "--decisions", str(dec)])
    assert rc == 0
    ds2 = ds.with_extended_positives(out / "extended_positives.json")
    assert ds2.positives([int(top.image)], [int(top.caption)])[0, 0]
    assert main(["audit", "shapes", "--top-k", "0", "--out", str(out)]) == 2
    assert "--top-k 0" in capsys.readouterr().err


@pytest.mark.skipif(not COCO_MINI.is_dir(), reason="../shared/data/coco-mini is absent")
def test_audit_of_the_real_coco_files(tmp_path, monkeypatch):
    from vlmkit.cli import main

    monkeypatch.setenv("VLMKIT_CACHE", str(tmp_path / "cache"))
    spec = f"coco:{COCO_MINI / 'annotations' / 'captions_train2017.json'}:{COCO_MINI / 'train2017'}"
    out = tmp_path / "coco"
    assert main(["audit", spec, "--top-k", "3", "--n-review", "6", "--out", str(out), "--device", "cpu"]) == 0
    table = pd.read_csv(out / "candidates.csv")
    mm = table[table.task == "mismatch"]
    assert len(mm) == 400 and mm.image_id.nunique() == 80 and (mm.image_id == mm.caption_image_id).all()
    fn = table[table.task == "false_negative"]
    assert len(fn) >= 80 * 3 and (fn.image_id != fn.caption_image_id).all()
    page = (out / "review.html").read_text()
    assert len(_decoded_thumbs(page)) == 6 * 2 + 6
    assert json.loads((out / "audit.json").read_text())["images"] == 80


# --------------------------------------------------------------------------- notebook 10


def _run_notebook(run_dir: Path, **params) -> dict:
    jupytext = pytest.importorskip("jupytext")
    ns: dict = {"__name__": "nb10"}
    for cell in jupytext.read(ROOT / "notebooks" / "10_audit.py").cells:
        if cell.cell_type != "code":
            continue
        exec(compile(cell.source, "10_audit.py", "exec"), ns)
        if "parameters" in cell.metadata.get("tags", []):
            ns.update(run_dir=str(run_dir), **params)
    return ns


def test_notebook_10_audits_a_runs_methods(tmp_path, monkeypatch):
    """In a run (01/02 registered a feature method and a VACSR-like one): no model is loaded,
    both become scorers (σ² included), the review page and tables are written, quality measured."""
    from vlmkit import workbook as wb

    monkeypatch.setenv("VLMKIT_HEADLESS", "1")
    run = wb.prepare_run_dir(tmp_path / "run")
    wb.save_data_spec(run, "shapes", 12, 0, model="vlmkit-tiny", pretrained_dir="")
    ds = wb.run_dataset(run)
    g = torch.Generator().manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(ds.num_images, 8, generator=g), dim=1)
    txt = torch.nn.functional.normalize(torch.as_tensor(ds.positives()).float().T @ img + 0.3 * torch.randn(ds.num_captions, 8, generator=g), dim=1)
    wb.register_method(run, "pretrained", img=img, txt=txt, info={"score_kind": "cosine"})
    s = 10 * (img @ txt.T)
    wb.register_method(run, "vacsr", scores=s, uncertainty=torch.rand(s.shape, generator=g), info={"score_kind": "logit"})
    wb.register_method(run, "joint", img=img, txt=txt, scores=-s, uncertainty=torch.rand(s.shape, generator=g), info={"score_kind": "logit"})
    ns = _run_notebook(run, audit_top_k=2, audit_review=4)
    assert [sc.name for sc in ns["scorers"]] == ["pretrained", "joint", "vacsr"] and ns["use_run"]
    joint = ns["scorers"][1]
    assert joint.has_uncertainty and torch.equal(joint.scores, -s)  # features + stored scores: scored by what it stored
    assert len(_decoded_thumbs((run / "audit" / "review.html").read_text())) == 4 * 2 + 4
    assert (run / "figures" / "10_audit_false_negative.html").is_file()
    q = pd.read_csv(run / "tables" / "audit_quality.csv")
    assert "exact truth" in q.protocol[0] and {"score:pretrained", "sigma2:vacsr", "sigma2:joint", "combined"} <= set(q.column)
    fn = pd.read_csv(run / "tables" / "audit_false_negative.csv")
    assert len(fn) == 4 and "mean over the combined columns" in fn.protocol[0]
    # a verdict through the widget, then the notebook's last cell credits it
    top = ns["res"].false_negatives.iloc[0]
    ns["reviewer"].mark("false_negative", top.image, top.caption, "true")
    tab = audit.reevaluate(ds, ns["scorers"][0], run / "audit" / "extended_positives.json")
    assert set(tab.positives) == {"before: exact truth", "after: one-to-one labels ∪ reviewed positives"}


def test_notebook_10_alone_on_noisy_embedded_data(tmp_path, monkeypatch):
    monkeypatch.setenv("VLMKIT_HEADLESS", "1")
    monkeypatch.setenv("VLMKIT_CACHE", str(tmp_path / "cache"))
    ns = _run_notebook(tmp_path / "alone", test_images=10, audit_noise=0.4, audit_top_k=2, audit_review=3, device="cpu")
    assert not ns["use_run"] and [sc.name for sc in ns["scorers"]] == ["zero-shot"]
    assert ns["ds"].caption_meta["noisy"].sum() > 0 and (tmp_path / "alone" / "audit" / "candidates.csv").is_file()
