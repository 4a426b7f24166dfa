"""Batches of runs aggregated over seeds (``vlmkit.batch``): numbers against a hand computation
from a hand-made ``summary.csv``, partial grids shown as such, the figures' traces and bands,
the comparison page written by ``vlmkit run --grid`` (with a fake chain), and re-loading a batch
directory after a run was continued and another added.  The end-to-end quick grid lives in
tests/test_workbook.py (its ``batch`` fixture, shared with the workbook's own checks)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vlmkit import batch
from vlmkit import workbook as wb
from vlmkit.stats import t_interval
from vlmkit.utils import VlmkitError

T975_2 = 4.302652729911275  # t(0.975, 2 degrees of freedom), the textbook table
R1, GAP, UNC = "R@1 i2t [full 10x50]", "gap ‖Δ‖", "unc–R@1 r [one-to-one labels] i2t"
# seed → (contrastive R@1, m2mix R@1) at noise_ratio 0 and 0.5; gap = R@1 / 100
VALUES = {0.0: {0: (1.0, 3.0), 1: (2.0, 3.0), 2: (3.0, 6.0)},
          0.5: {0: (10.0, 11.0), 1: (20.0, 24.0), 2: (30.0, 35.0)}}


def _summary() -> pd.DataFrame:
    rows = []
    for nr, by_seed in VALUES.items():
        for seed, (c, m) in by_seed.items():
            for method, v, unc in (("pretrained", 0.5, np.nan), ("contrastive", c, -0.5), ("m2mix", m, -0.25 * (seed + 1))):
                rows.append({"run": f"r-seed{seed}-nr{nr}", "status": "ok", "seed": seed, "noise_ratio": nr, "method": method,
                             R1: v, GAP: v / 100, UNC: unc})
    return pd.DataFrame(rows)


def _cell(frame: pd.DataFrame, method: str, metric: str, nr: float) -> pd.Series:
    hit = frame[(frame.method == method) & (frame.metric == metric) & (frame.noise_ratio == nr)]
    assert len(hit) == 1, (method, metric, nr, hit)
    return hit.iloc[0]


def test_headline_metrics_are_the_first_match_of_each_pattern():
    cols = ["R@1 i2t [full 60x300]", "R@1 t2i [full 60x300]", "RSUM both [full 60x300]", "R@1 i2t [extended positives (matrix), full 60x300]",
            "ECE % i2t [one-to-one labels]", "ECE % i2t [exact truth]", "ECE % t2i [one-to-one labels]", "gap ‖Δ‖",
            "unc–R@1 r [one-to-one labels] i2t", "−score control r [one-to-one labels] i2t", "unc–R@1 r [truth] i2t",
            "unc–R@1 r [one-to-one labels] t2i", "FN-vs-TN AUROC of σ²"]
    b = batch.from_summary(pd.DataFrame([{"run": "r", "status": "ok", "seed": 0, "method": "m", **{c: 1.0 for c in cols}}]))
    assert b.headline() == ["R@1 i2t [full 60x300]", "R@1 t2i [full 60x300]", "RSUM both [full 60x300]", "gap ‖Δ‖",
                            "ECE % i2t [one-to-one labels]", "ECE % t2i [one-to-one labels]", "unc–R@1 r [one-to-one labels] i2t",
                            "unc–R@1 r [one-to-one labels] t2i"]


def test_stats_is_the_claims_rule():
    from vlmkit.claims import t_interval as claims_t

    assert claims_t is t_interval
    mean, sd, lo, hi = t_interval([1.0, 2.0, 3.0])
    assert (mean, sd) == (2.0, 1.0) and lo == pytest.approx(2 - T975_2 / math.sqrt(3)) and hi == pytest.approx(2 + T975_2 / math.sqrt(3))


def test_aggregate_and_paired_differences_match_a_hand_computation(tmp_path):
    folder = tmp_path / "batch-x"
    folder.mkdir()
    _summary().to_csv(folder / "summary.csv", index=False)
    b = batch.load(folder)  # the runs it names do not exist: the CSV's rows are used as they are
    assert (b.params, b.point_params, b.seed_key, b.methods) == (["seed", "noise_ratio"], ["noise_ratio"], "seed",
                                                                  ["pretrained", "contrastive", "m2mix"])
    assert b.metrics == [R1, GAP, UNC] and b.numeric == {"noise_ratio": True} and b.headline() == [R1, GAP, UNC]
    agg = b.aggregate()
    # contrastive at noise 0: 1, 2, 3 → mean 2, sd 1, 2 ± t·1/√3
    c = _cell(agg, "contrastive", R1, 0.0)
    assert (c.n, c.n_expected, c.seeds, c.missing_seeds, c["mean"], c.sd) == (3, 3, "0,1,2", "", 2.0, 1.0)
    assert c.ci95_lo == pytest.approx(2 - T975_2 / math.sqrt(3)) and c.ci95_hi == pytest.approx(2 + T975_2 / math.sqrt(3))
    # m2mix at noise 0.5: 11, 24, 35 → mean 70/3, sd √(Σ(x−x̄)²/2)
    m = _cell(agg, "m2mix", R1, 0.5)
    x = np.array([11.0, 24.0, 35.0])
    sd = math.sqrt(((x - x.mean()) ** 2).sum() / 2)
    assert m["mean"] == pytest.approx(70 / 3) and m.sd == pytest.approx(sd)
    assert m.ci95_hi - m["mean"] == pytest.approx(T975_2 * sd / math.sqrt(3))
    assert _cell(agg, "m2mix", GAP, 0.5)["mean"] == pytest.approx(70 / 300)
    # a metric the method never reports (pretrained has no uncertainty) is left out, not "missing"
    assert agg[(agg.method == "pretrained") & (agg.metric == UNC)].empty
    # paired within the seed: m2mix − contrastive at noise 0 is 2, 1, 3 → mean 2, sd 1 (unpaired sds would be 1 and 1.73)
    diff = b.differences()
    d = _cell(diff, "m2mix − contrastive", R1, 0.0)
    assert d.kind == "paired difference" and (d["mean"], d.sd, d.n) == (2.0, 1.0, 3)
    assert d.ci95_lo == pytest.approx(2 - T975_2 / math.sqrt(3))
    d = _cell(diff, "m2mix − contrastive", R1, 0.5)  # 1, 4, 5
    assert d["mean"] == pytest.approx(10 / 3) and d.sd == pytest.approx(np.std([1, 4, 5], ddof=1))
    assert set(diff.method) == {"contrastive − pretrained", "m2mix − pretrained", "m2mix − contrastive"}
    assert set(b.differences(None).method) == {"pretrained − contrastive", "m2mix − contrastive"}  # against the baseline
    with pytest.raises(VlmkitError, match="baseline 'sigmoid': no such method"):
        b.differences("sigmoid")
    # the at-a-glance table: metric and grid point as rows, methods as columns, the report's precision rule
    t = b.table()
    assert list(t.columns) == ["metric", "noise_ratio", "pretrained", "contrastive", "m2mix"]
    row = t[(t.metric == R1) & (t.noise_ratio == "0")].iloc[0]
    assert (row.pretrained, row.contrastive, row.m2mix) == ("0.50 ± 0.00", "2.00 ± 1.00", "4.00 ± 1.73")
    row = t[(t.metric == UNC) & (t.noise_ratio == "0.5")].iloc[0]
    assert (row.pretrained, row.contrastive, row.m2mix) == ("—", "-0.500 ± 0.000", "-0.500 ± 0.250")
    assert b.missing().empty and b.excluded().empty
    # written: summary.csv keeps the raw rows, summary_by_seed.csv the aggregates with a protocol
    b.write(folder, png=False)
    assert pd.read_csv(folder / "summary.csv").shape == _summary().shape
    by = pd.read_csv(folder / "summary_by_seed.csv")
    assert len(by) == len(agg) + len(diff) and by.protocol.str.contains("Student-t").all()
    assert _cell(by, "m2mix − contrastive", R1, 0.0).sd == 1.0


def test_a_partial_grid_is_shown_as_such_never_averaged_silently():
    rows = _summary()
    # seed 2 of m2mix at noise 0.5 is missing; a third point failed (its numbers, if any, must not count)
    rows = rows[~((rows.method == "m2mix") & (rows.seed == 2) & (rows.noise_ratio == 0.5))]
    failed = pd.DataFrame([{"run": "r-seed0-nr1", "status": "failed", "seed": 0, "noise_ratio": 1.0, "method": "contrastive", R1: 99.0}])
    rerun = pd.DataFrame([{"run": "r-seed0-nr0-a", "status": "ok", "seed": 0, "noise_ratio": 0.0, "method": "contrastive", R1: 1.0}])
    older = rerun.assign(run="r-seed0-nr0-0", **{R1: 50.0})  # an earlier run of the same point and seed: superseded
    b = batch.from_summary(pd.concat([rows[rows.run != "r-seed0-nr0.0"], older, rerun, failed], ignore_index=True))
    agg = b.aggregate()
    m = _cell(agg, "m2mix", R1, 0.5)
    assert (m.n, m.n_expected, m.seeds, m.missing_seeds) == (2, 3, "0,1", "2") and m["mean"] == pytest.approx(17.5)
    d = _cell(b.differences(), "m2mix − contrastive", R1, 0.5)  # only the seeds where both have a value
    assert (d.n, d["mean"]) == (2, 2.5)
    c = _cell(agg, "contrastive", R1, 0.0)  # seed 0 from the later run only; its other methods are gone with the run
    assert (c.n, c["mean"]) == (3, 2.0)
    assert _cell(agg, "m2mix", R1, 0.0).missing_seeds == "0"
    f = _cell(agg, "contrastive", R1, 1.0)
    assert f.n == 0 and math.isnan(f["mean"]) and f.missing_seeds == "0,1,2"
    miss = b.missing()
    assert {(r.noise_ratio, r.method, r.missing_seeds) for r in miss.itertuples()} >= {(0.5, "m2mix", "2"), (1.0, "contrastive", "0,1,2")}
    assert sorted(zip(b.excluded().run, b.excluded().status)) == [("r-seed0-nr0-0", "superseded"), ("r-seed0-nr1", "failed")]
    t = b.table([R1])
    assert t[t.noise_ratio == "0.5"].m2mix.item() == "17.50 ± 9.19 (n=2/3)" and t[t.noise_ratio == "1"].contrastive.item() == "missing"
    html = b.sections_html(Path("nowhere"))
    assert "<h2>Partial grid</h2>" in html and "r-seed0-nr1" in html and "superseded" in html and "(n=2/3)" in html


def test_a_method_a_grid_point_did_not_ask_for_is_not_missing():
    rows = []
    for seed in (0, 1):
        for methods, names in (("contrastive,m2mix", ("pretrained", "contrastive", "m2mix")), ("sigmoid", ("pretrained", "sigmoid"))):
            for k, m in enumerate(names):
                rows.append({"run": f"r{seed}-{methods}", "status": "ok", "seed": seed, "methods": methods, "method": m, R1: 10.0 * k + seed})
    rows = [r for r in rows if not (r["seed"] == 1 and r["method"] == "m2mix")]  # m2mix lost in one run: missing
    rows.append({"run": "r-failed", "status": "failed", "seed": 0, "methods": "siglip"})  # a point with no ok run: all missing
    b = batch.from_summary(pd.DataFrame(rows))
    t = b.table().set_index("methods")
    assert t.loc["contrastive,m2mix", "sigmoid"] == "—" and t.loc["sigmoid", "m2mix"] == "—" and t.loc["sigmoid", "contrastive"] == "—"
    assert t.loc["contrastive,m2mix", "m2mix"] == "20.00 (n=1/2)" and t.loc["sigmoid", "sigmoid"] == "10.50 ± 0.71"
    assert (t.loc["siglip", ["pretrained", "contrastive", "m2mix", "sigmoid"]] == "missing").all()
    assert set(b.differences().query("methods == 'sigmoid'").method) == {"sigmoid − pretrained"}


def test_figures_have_a_line_and_a_band_per_method_and_a_difference_panel_with_zero():
    rows = _summary()
    rows = rows[~((rows.method == "m2mix") & (rows.seed == 2) & (rows.noise_ratio == 0.5))]
    b = batch.from_summary(pd.concat([rows, pd.DataFrame([{"run": "rf", "status": "failed", "seed": 0, "noise_ratio": 1.0}])]))
    figs = b.figures()
    assert list(figs) == ["r1_i2t_full_10x50_vs_noise_ratio", "gap_vs_noise_ratio", "unc_r1_r_one_to_one_labels_i2t_vs_noise_ratio"]
    fig = figs["r1_i2t_full_10x50_vs_noise_ratio"]
    means = {t.name: t for t in fig.data if t.meta == "mean"}
    bands = [t for t in fig.data if t.meta == "band"]
    assert set(means) == {"pretrained", "contrastive", "m2mix", "pretrained − contrastive", "m2mix − contrastive"}
    assert {t.xaxis for t in fig.data if t.meta == "mean" and "−" in t.name} == {"x2"}
    # contrastive: mean at noise 0 / 0.5 / 1 (missing: a gap, never interpolated)
    c = means["contrastive"]
    assert list(c.x) == [0.0, 0.5, 1.0] and c.y[0] == 2.0 and c.y[1] == 20.0 and math.isnan(c.y[2]) and c.connectgaps is False
    band = next(t for t in bands if t.name == "contrastive · 95 % interval")
    half0, half5 = T975_2 / math.sqrt(3), T975_2 * 10 / math.sqrt(3)
    assert list(band.x) == [0.0, 0.5, 0.5, 0.0] and band.fill == "toself"
    # R@1 is a percentage: the band is drawn within [0, 100] (2 − 2.48 and 20 − 24.8 become 0), and the figure says so
    assert np.allclose(band.y, [2 + half0, 20 + half5, 0, 0]) and "drawn within the metric's range [0, 100]" in fig.layout.title.text
    assert batch.metric_range(R1) == (0, 100) and batch.metric_range(UNC) == (-1, 1) and batch.metric_range(GAP) is None
    assert "drawn within" not in figs["gap_vs_noise_ratio"].layout.title.text
    # the partial cell (m2mix at 0.5: 2 of 3 seeds) has an open marker; the failed point is marked ×
    assert list(means["m2mix"].marker.color)[1] == "white" and list(means["m2mix"].marker.color)[0] != "white"
    assert [t.x for t in fig.data if t.meta == "missing"][0] == (1.0,)
    zero = [s for s in fig.layout.shapes if s.y0 == 0 and s.y1 == 0 and s.line.dash == "dash"]
    assert len(zero) == 1 and zero[0].yref == "y2"
    # a categorical parameter: grouped bars with the interval as error bars
    cat = _summary().assign(preset=lambda d: np.where(d.noise_ratio == 0, "default", "stress")).drop(columns="noise_ratio")
    cat = cat[["run", "status", "seed", "preset", "method", R1]]
    b = batch.from_summary(cat)
    assert b.numeric == {"preset": False}
    fig = b.figures([R1])["r1_i2t_full_10x50_vs_preset"]
    bars = {t.name: t for t in fig.data if t.type == "bar"}
    assert list(bars["contrastive"].x) == ["default", "stress"] and list(bars["contrastive"].y) == [2.0, 20.0]
    assert np.allclose(bars["contrastive"].error_y.array, [half0, half5]) and fig.layout.barmode == "group"
    assert np.allclose(bars["contrastive"].error_y.arrayminus, [2.0, 20.0])  # down to 0, not below
    assert np.allclose(bars["m2mix − contrastive"].y, [2.0, 10 / 3])
    # a grid over seeds only: one bar per method
    solo = batch.from_summary(_summary()[lambda d: d.noise_ratio == 0].drop(columns="noise_ratio"))
    assert solo.point_params == [] and list(solo.figures([R1])) == ["r1_i2t_full_10x50_vs_method"]
    # a metric only one method reports: no difference panel, and the figure says why
    only = batch.from_summary(_summary()[lambda d: d.method != "m2mix"])
    fig = only.figures([UNC])["unc_r1_r_one_to_one_labels_i2t_vs_noise_ratio"]
    assert not [t for t in fig.data if t.xaxis == "x2" and t.meta == "mean"]
    assert any("no paired difference" in a.text for a in fig.layout.annotations)


def test_bad_summary_is_named(tmp_path):
    with pytest.raises(VlmkitError, match="summary.csv: no such file"):
        batch.load(tmp_path)
    (tmp_path / "summary.csv").write_text("run,status,seed\nr,ok,0\n")
    with pytest.raises(VlmkitError, match=r"summary.csv: no 'method' column"):
        batch.load(tmp_path)


def _fake_run(root: Path, name: str, point: dict, r1: dict[str, float], status: str = "ok") -> Path:
    run = wb.prepare_run_dir(root / name)
    if r1:
        wb.write_table(run, "summary", pd.DataFrame({"method": list(r1), R1: list(r1.values()), GAP: [v / 100 for v in r1.values()]}))
    (run / "run.json").write_text(json.dumps({"parameters": point, "grid_point": point, "status": status}))
    return run


def test_a_grid_where_no_run_reached_a_summary_gets_the_per_point_page_alone(tmp_path):
    runs = [_fake_run(tmp_path, f"s{k}", {"seed": k}, {}, status="failed" if k else "ok") for k in (0, 1)]
    page = batch.write_batch(tmp_path / "batch", runs, png=False)
    text = page.read_text()
    assert page.name == "report.html" and "2 grid points" in text and "(seed = 1)" in text
    assert not (tmp_path / "batch" / "summary_by_seed.csv").exists()  # nothing to aggregate, nothing averaged


def test_vlmkit_run_grid_writes_aggregates_figures_and_the_page_and_load_rereads_the_runs(tmp_path, monkeypatch):
    from vlmkit import cli

    def fake_chain(run_dir, params, point, only):  # seed 1 at noise 0.5 fails before 08
        ok = not (point["seed"] == 1 and point["noise_ratio"] == 0.5)
        r1 = {"contrastive": 10.0 + point["seed"] + 10 * point["noise_ratio"], "m2mix": 12.0 + 2 * point["seed"]} if ok else {}
        _fake_run(run_dir.parent, run_dir.name, point, r1, "ok" if ok else "failed")
        return ok

    monkeypatch.setattr(cli, "run_chain", fake_chain)
    monkeypatch.setenv("VLMKIT_NO_PNG", "1")
    assert cli.main(["run", "--out", str(tmp_path), "--grid", "seeds=0,1", "noise_ratio=0,0.5", "--only", "08"]) == 1
    (folder,) = tmp_path.glob("batch-*")
    assert sorted(p.name for p in folder.iterdir()) == ["figures", "report.html", "summary.csv", "summary_by_seed.csv"]
    assert sorted(p.name for p in (folder / "figures").glob("*.html")) == ["gap_vs_noise_ratio.html", "r1_i2t_full_10x50_vs_noise_ratio.html"]
    by = pd.read_csv(folder / "summary_by_seed.csv", dtype={"seeds": str, "missing_seeds": str})
    c = _cell(by, "m2mix", R1, 0.0)
    assert (c.n, c["mean"], c.sd) == (2, 13.0, pytest.approx(math.sqrt(2)))
    assert _cell(by, "m2mix", R1, 0.5).missing_seeds == "1"
    page = (folder / "report.html").read_text()
    for sec in ("points", "figures", "by-seed", "partial", "per-point", "across"):
        assert f"<section id={sec}>" in page, sec
    assert page.index("<section id=figures>") < page.index("<section id=per-point>")
    assert page.count("<iframe class=plotly src='figures/") == 2  # no PNG: the interactive figure in a frame
    assert "13.00 ± 1.41" in page and "(n=1/2)" in page and "failed" in page.split("<section id=partial>")[1]
    # continue a run (new numbers) and add another seed: load() re-reads them
    runs = sorted(p for p in tmp_path.iterdir() if p.name != folder.name)
    _fake_run(tmp_path, runs[0].name, {"seed": 0, "noise_ratio": 0}, {"contrastive": 0.0, "m2mix": 100.0})
    extra = _fake_run(tmp_path, "later-seed2", {"seed": 2, "noise_ratio": 0}, {"contrastive": 30.0, "m2mix": 16.0})
    b = batch.load(folder, add=[extra])
    c = _cell(b.aggregate(), "m2mix", R1, 0.0)
    assert (c.n, c.n_expected, c["mean"]) == (3, 3, pytest.approx((100 + 14 + 16) / 3))
    assert _cell(batch.load(folder, refresh=False).aggregate(), "m2mix", R1, 0.0)["mean"] == 13.0
    page = b.write(png=False)
    assert page == folder / "report.html" and "later-seed2" in page.read_text()
    with pytest.raises(VlmkitError, match="not a run directory"):
        batch.load(folder, add=[tmp_path / "nope"])


def test_png_figures_are_embedded_when_they_can_be_exported(tmp_path):
    from vlmkit.viz import png_available

    b = batch.from_summary(_summary()[["run", "status", "seed", "noise_ratio", "method", R1]])
    b.write(tmp_path, png=True)
    png = tmp_path / "figures" / "r1_i2t_full_10x50_vs_noise_ratio.png"
    if not png.is_file():
        assert not png_available()
        pytest.skip("PNG export unavailable here (kaleido / Chromium)")
    from PIL import Image

    with Image.open(png) as im:
        assert im.size == (1150, 500)
    html = b.sections_html(tmp_path)
    assert html.count("<img class=fig src='data:image/png;base64,") == 1 and "<iframe" not in html
