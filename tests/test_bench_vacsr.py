"""The issue-#19 benchmark scripts (bench/exp_vacsr_frozen.py, bench/exp_vacsr_joint.py): their
metric row against brute force, the joint ablations' configurations, the run plan, the timing, and a
tiny end-to-end run of each on a random vlmkit-tiny model."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from vlmkit.utils import VlmkitError
from vlmkit.vacsr import VACSRConfig

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _load(name: str):
    if name in sys.modules:
        return sys.modules[name]
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(BENCH))
    return mod


frozen = _load("exp_vacsr_frozen")
joint = _load("exp_vacsr_joint")


# ---- the metric row --------------------------------------------------------------------------

def _split(n_img=30, per=2, n_fn=25, seed=0):
    """A fake test split: ``per`` labelled captions per image and ``n_fn`` extra true pairs."""
    rng = np.random.default_rng(seed)
    m = n_img * per
    ci = np.repeat(np.arange(n_img), per)
    lab = np.arange(n_img)[:, None] == ci[None, :]
    truth = lab.copy()
    idx = rng.choice(np.flatnonzero(~lab.ravel()), n_fn, replace=False)
    truth.ravel()[idx] = True
    return SimpleNamespace(labels=lambda: lab, positives=lambda: truth, caption_image=ci, num_images=n_img), lab, truth, m


def _r1(s, rel, direction):
    s, rel = (s, rel) if direction == "i2t" else (s.T, rel.T)
    return 100 * float(np.mean([rel[q, np.argmax(s[q])] for q in range(len(s)) if rel[q].any()]))


def _auroc(x, lab, truth):
    fn, tn = x[~lab & truth], x[~lab & ~truth]
    gt = (fn[:, None] > tn[None, :]).mean()
    eq = (fn[:, None] == tn[None, :]).mean()
    return gt + 0.5 * eq


def test_pair_metrics_against_brute_force():
    test, lab, truth, m = _split()
    g = torch.Generator().manual_seed(1)
    scores = torch.rand(lab.shape, generator=g, dtype=torch.float64) + 0.6 * torch.from_numpy(truth)
    row = frozen.pair_metrics(scores, -scores, test, has_sigma2=True)
    s = scores.numpy()
    for d in ("i2t", "t2i"):
        assert row[f"r1_{d}"] == pytest.approx(_r1(s, lab, d))
        # σ² = −score: Fig. 3 of σ² is its own control, bin for bin
        assert row[f"fig3_r_{d}"] == pytest.approx(row[f"fig3_control_{d}"])
        assert np.isfinite(row[f"fig3_control_{d}"])
    assert row["fn_auroc_score"] == pytest.approx(_auroc(s, lab, truth))
    assert row["fn_auroc_sigma2"] == pytest.approx(1 - row["fn_auroc_score"])  # no ties
    assert row["sigma2_q05"] == pytest.approx(np.quantile(-s, 0.05))
    assert row["sigma2_median_tn"] == pytest.approx(np.median(-s[~lab & ~truth]))
    assert row["sigma2_median_fn"] == pytest.approx(np.median(-s[~lab & truth]))


def test_pair_metrics_map_and_no_sigma2():
    test, lab, truth, _ = _split(seed=3)
    g = torch.Generator().manual_seed(2)
    perfect = torch.from_numpy(truth).double() + 0.01 * torch.rand(lab.shape, generator=g, dtype=torch.float64)
    row = frozen.pair_metrics(perfect, torch.rand(lab.shape, generator=g), test, has_sigma2=False)
    assert row["map_i2t"] == pytest.approx(100) and row["map_t2i"] == pytest.approx(100)  # every true pair first
    assert row["fn_auroc_score"] == pytest.approx(1.0)
    assert np.isnan(row["fn_auroc_sigma2"]) and np.isnan(row["fig3_r_i2t"]) and "sigma2_q05" not in row
    # a reversed ranking puts every true pair last
    row = frozen.pair_metrics(-perfect, None, test, has_sigma2=True)
    assert row["r1_i2t"] == 0 and row["fn_auroc_score"] == pytest.approx(0.0) and np.isnan(row["fn_auroc_sigma2"])


def test_summary_table_mean_sd_and_missing():
    df = pd.DataFrame({"method": ["a", "b", "a"], "seed": [0, 0, 1], "x": [1.0, 5.0, 2.0], "y": [np.nan, 3.0, np.nan],
                       "pretrained": ["p"] * 3})
    lines = frozen.summary_table(df, skip=("pretrained",)).splitlines()
    assert lines[0] == "| method | seeds | x | y |"
    assert lines[2] == "| a | 2 | 1.5 ± 0.71 | — |"
    assert lines[3] == "| b | 1 | 5 | 3 |"


def test_parse_seeds():
    assert frozen.parse_seeds("0,1,2") == [0, 1, 2]
    for bad in ("0,a", "1,1"):
        with pytest.raises(VlmkitError, match="--seeds"):
            frozen.parse_seeds(bad)


# ---- the joint bench's configurations, plan and timing ----------------------------------------

def test_joint_variants_are_the_frozen_ablations():
    kw = dict(pretrained="stand-in", vacsr={"lr": 2e-4}, overrides={"epochs": 3})
    labels = {}
    for m in joint.JOINT_VARIANTS:
        cfg = joint.train_config(m, 1, **kw)
        assert cfg.method == "vacsr-joint" and cfg.seed == cfg.data_seed == 1 and cfg.epochs == 3
        assert cfg.vacsr_option("lr") == pytest.approx(2e-4)  # --vacsr applies on top of every variant
        labels[m] = cfg.vacsr_config(16)
    assert labels["vacsr-joint"].to_dict() == VACSRConfig(dim=16).to_dict()
    assert labels["vacsr-joint-hetero"].to_dict() == VACSRConfig(dim=16, mechanism="hetero").to_dict()
    assert labels["vacsr-joint-plain"].to_dict() == VACSRConfig.plain_sigmoid(16).to_dict()
    assert [c.label for c in labels.values()] == ["vacsr", "vacsr-hetero", "plain-sigmoid-mlp"]
    sig = joint.train_config("sigmoid", 0, **kw)
    assert sig.method == "sigmoid" and sig.vacsr == {}


def test_joint_config_errors_name_the_option():
    kw = dict(pretrained="stand-in", vacsr={})
    with pytest.raises(VlmkitError, match="--methods.*'cosine'"):
        joint.train_config("cosine", 0, overrides={}, **kw)
    with pytest.raises(VlmkitError, match="--train-config.*'lrr'"):
        joint.train_config("sigmoid", 0, overrides={"lrr": 1}, **kw)
    with pytest.raises(VlmkitError, match="--train-config.*'seed'"):
        joint.train_config("sigmoid", 0, overrides={"seed": 1}, **kw)


def test_plan_is_seed_major_and_skips_done():
    ms = ["sigmoid", "vacsr-joint"]
    assert joint.plan(ms, [0, 1]) == [("sigmoid", 0), ("vacsr-joint", 0), ("sigmoid", 1), ("vacsr-joint", 1)]
    assert joint.plan(ms, [0, 1], {("sigmoid", 0), ("vacsr-joint", 1)}) == [("vacsr-joint", 0), ("sigmoid", 1)]


def test_epoch_timing_from_history():
    hist = [{"step": 10, "step_ms": 200.0, "seconds": 3.0}, {"step": 20, "step_ms": 400.0, "seconds": 5.0}]
    assert joint.epoch_timing(hist) == {"sec_per_epoch": 3.0, "sec_per_epoch_with_val": 4.0}  # (2 s + 4 s) / 2


# ---- end to end, tiny, on a random vlmkit-tiny model --------------------------------------------

@pytest.mark.slow
def test_frozen_bench_end_to_end(tmp_path, capsys):
    frozen.main(["--pretrained", "none", "--seeds", "0,1", "--methods", "vacsr,plain-sigmoid-mlp,cosine", "--train-images", "40",
                 "--test-images", "20", "--epochs", "1", "--batch-size", "32", "--out", str(tmp_path), "--device", "cpu"])
    df = pd.read_csv(tmp_path / "results.csv")
    assert list(zip(df.method, df.seed)) == [("vacsr", 0), ("plain-sigmoid-mlp", 0), ("cosine", 0), ("vacsr", 1), ("plain-sigmoid-mlp", 1)]
    assert df.loc[df.method == "vacsr", "sec_per_epoch"].gt(0).all() and df.loc[df.method == "cosine", "sec_per_epoch"].isna().all()
    assert df.loc[df.method == "vacsr", "fn_auroc_sigma2"].between(0, 1).all()
    assert df.loc[df.method != "vacsr", "fn_auroc_sigma2"].isna().all() and (df.pretrained == "none").all()
    out = capsys.readouterr().out
    assert "protocol: frozen features of pretrained=none" in out and "| vacsr | 2 |" in out


@pytest.mark.slow
def test_joint_bench_end_to_end_and_resume(tmp_path, capsys):
    args = ["--pretrained", "none", "--seeds", "0", "--methods", "sigmoid,vacsr-joint-plain", "--train-images", "40",
            "--val-images", "8", "--test-images", "16", "--epochs", "1", "--batch-size", "16", "--out", str(tmp_path),
            "--device", "cpu", "--vacsr", '{"warm_epochs": 1}', "--train-config", '{"eval_batch_size": 64}']
    joint.main(args)
    df = pd.read_csv(tmp_path / "results.csv")
    assert list(df.method) == ["sigmoid", "vacsr-joint-plain"] and list(df.adapter) == ["sigmoid", "plain-sigmoid-mlp"]
    assert df.sec_per_epoch.gt(0).all() and (df.wall_seconds >= df.sec_per_epoch).all()
    assert df.loc[1, "warm_seconds"] > 0 and np.isnan(df.loc[1, "fn_auroc_sigma2"]) and df.fn_auroc_score.between(0, 1).all()
    assert '"variational": false' in df.loc[1, "vacsr"] and '"warm_epochs": 1' in df.loc[1, "vacsr"]
    capsys.readouterr()
    joint.main(args)  # both rows done: nothing is trained again
    out = capsys.readouterr().out
    assert "==" not in out and "| vacsr-joint-plain | 1 |" in out
    assert len(pd.read_csv(tmp_path / "results.csv")) == 2


def test_table_vacsr_names_a_missing_or_foreign_csv_and_the_bench_that_writes_it(tmp_path, capsys):
    table = _load("table_vacsr")
    good = tmp_path / "frozen.csv"
    pd.DataFrame([{"method": "vacsr", "seed": s, "r1_i2t": 30.0 + s, "r1_t2i": 17.0, "map_i2t": 6.0, "map_t2i": 19.0,
                   "fig3_r_i2t": 0.8, "fig3_r_t2i": 0.8, "fig3_control_i2t": -0.9, "fig3_control_t2i": -0.9,
                   "fn_auroc_sigma2": 0.85, "fn_auroc_score": 0.88, "sec_per_epoch": 27.0} for s in (0, 1)]).to_csv(good, index=False)
    assert table.main([str(good)]) == 0
    out = capsys.readouterr().out
    assert "| frozen | **`vacsr`** (the paper's adapter) | 0,1 | 30.5 ± 0.7 | 17.0 ± 0.0 |" in out
    missing = tmp_path / "runs" / "exp-vacsr-joint" / "results.csv"
    assert table.main([str(good), str(missing)]) == 2
    io = capsys.readouterr()
    assert io.out == ""  # no half table
    assert f"{missing} (the joint part of the table): no such file" in io.err and "bench/exp_vacsr_joint.py" in io.err
    with pytest.raises(VlmkitError, match=r"(?s)nope\.csv \(the frozen part.*no such file.*bench/exp_vacsr_frozen\.py"):
        table.read_results(str(tmp_path / "nope.csv"), "frozen")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(VlmkitError, match=r"(?s)empty\.csv .*not a results CSV.*exp_vacsr_frozen"):
        table.read_results(str(tmp_path / "empty.csv"), "frozen")
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(VlmkitError, match=r"(?s)other\.csv .*no column\(s\) method, seed, r1_i2t, r1_t2i.*exp_vacsr_joint"):
        table.read_results(str(tmp_path / "other.csv"), "joint")
