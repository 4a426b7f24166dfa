"""The workbook: parameter cells papermill can document, every notebook executed headless
through ``vlmkit run`` (a 2-point batch with small parameters), the figures and tables it
must leave behind holding data, a failing notebook stopping only its own chain, and real
data (coco-mini + a local checkpoint) through the same command."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import papermill as pm
import pytest

from vlmkit.cli import QUICK, notebooks, parse_grid
from vlmkit.utils import VlmkitError
from vlmkit.workbook import list_methods, method_summary, register_method, summarise_runs, write_table

ROOT = Path(__file__).resolve().parents[1]
COCO_MINI = ROOT.parent / "shared" / "data" / "coco-mini"
EXPECTED_NOTEBOOKS = ["00_primer", "01_data_and_model", "02_finetune", "03_modality_gap", "04_mixed_retrievals",
                      "05_uncertainty", "06_similarity_histograms", "07_reliability", "08_report"]


def _vlmkit(args: list[str], env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vlmkit.cli", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    cache = tmp_path_factory.mktemp("vlmkit-cache")  # shared by the runs of this module: one quick pretraining
    return {**os.environ, "VLMKIT_CACHE": str(cache), "VLMKIT_NO_PNG": "1", "VLMKIT_NO_PROGRESS": "1", "OMP_NUM_THREADS": "2"}


def _plotly_points(html: Path) -> int:
    """Number of data values in the figure JSON embedded in a saved plotly HTML file."""
    text = html.read_text()
    m = re.search(r"Plotly\.newPlot\(\s*\"[^\"]+\",\s*(\[.*?\])\s*,\s*\{", text, re.S)
    assert m, f"{html.name}: no Plotly.newPlot call"
    traces = json.loads(m.group(1))
    n = 0
    for tr in traces:
        for key in ("x", "y", "z", "cells", "values"):
            v = tr.get(key)
            if isinstance(v, list):
                n += len(v)
            elif isinstance(v, dict):  # numpy arrays are stored as {"dtype", "bdata"}, tables as {"values": ...}
                n += len(v.get("values", [])) if "values" in v else (1 if v.get("bdata") else 0)
    return n


# --------------------------------------------------------------------------- notebooks as files


def test_notebooks_are_numbered_with_one_documented_parameters_cell():
    assert [p.stem for p in notebooks()] == EXPECTED_NOTEBOOKS
    for path in notebooks():
        book = nbformat.read(path, as_version=4)
        tagged = [c for c in book.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, path.name
        declared = [n.target.id for n in ast.parse(tagged[0].source).body if isinstance(n, ast.AnnAssign)]
        params = pm.inspect_notebook(str(path))
        assert sorted(params) == sorted(declared), f"{path.name}: papermill cannot parse {set(declared) - set(params)}"
        assert "run_dir" in params
        assert all(p["help"] for p in params.values()), path.name
        assert not any(c.get("outputs") for c in book.cells if c.cell_type == "code"), f"{path.name} is committed with outputs"


def test_quick_parameters_are_declared_somewhere():
    declared = set().union(*(pm.inspect_notebook(str(p)) for p in notebooks()))
    assert set(QUICK) - {"quick"} <= declared


def test_parse_grid():
    points = parse_grid(["seeds=0,1", "noise_ratio=0,0.2", "methods=contrastive+m2mix,sigmoid"])
    assert len(points) == 8
    assert points[0] == {"seed": 0, "noise_ratio": 0, "methods": ["contrastive", "m2mix"]}
    assert {p["noise_ratio"] for p in points} == {0, 0.2}
    with pytest.raises(VlmkitError, match="key=v1"):
        parse_grid(["seeds"])
    with pytest.raises(VlmkitError, match="no values"):
        parse_grid(["seeds="])


def test_cli_reports_bad_input(tmp_path, env):
    r = _vlmkit(["run", "--out", str(tmp_path), "--grid", "seeds"], env, timeout=120)
    assert r.returncode == 2 and "--grid item 'seeds'" in r.stderr
    (tmp_path / "bad.yaml").write_text("- just\n- a list\n")
    r = _vlmkit(["run", "--out", str(tmp_path), "--config", str(tmp_path / "bad.yaml")], env, timeout=120)
    assert r.returncode == 2 and "bad.yaml" in r.stderr and "mapping" in r.stderr


# --------------------------------------------------------------------------- run-dir helpers


def test_method_registry_and_summary(tmp_path):
    import torch

    img, txt = torch.eye(3, 4), torch.eye(3, 4)
    register_method(tmp_path, "a", img=img, txt=txt, info={"score_kind": "cosine"})
    register_method(tmp_path, "b", scores=img @ txt.T, uncertainty=torch.rand(3, 3))
    reg = list_methods(tmp_path)
    assert reg["a"]["has_features"] and not reg["a"]["has_uncertainty"] and reg["b"]["has_uncertainty"]
    with pytest.raises(VlmkitError, match="nothing to store"):
        register_method(tmp_path, "c")
    write_table(tmp_path, "retrieval", pd.DataFrame([{"method": "a", "protocol": "full 3x3", "direction": "i2t", "metric": "R@1", "value": 100.0}]))
    write_table(tmp_path, "uncertainty", pd.DataFrame([{"method": "b", "direction": "i2t", "pearson": -0.9},
                                                      {"method": "b", "direction": "pairs", "fn_auroc": 0.7}]), protocol="p")
    s = method_summary(tmp_path).set_index("method")
    assert s.loc["a", "R@1 i2t [full 3x3]"] == 100.0
    assert s.loc["b", "unc–R@1 r i2t"] == -0.9 and s.loc["b", "FN-vs-TN AUROC"] == 0.7
    assert "unc–R@1 r pairs" not in s.columns


# --------------------------------------------------------------------------- executing the workbook

FIGURES = ["00_random_init_cones", "00_temperature_gap", "01_census", "01_example_captions", "03_gap_per_method",
           "00_shift", "03_gap_shift", "03_embeddings_pretrained_pca", "03_embeddings_contrastive_pca", "03_embeddings_m2mix_pca",
           "03_embeddings_pretrained_pca3d", "04_slerp_path", "04_hardness", "05_uncertainty_vacsr_i2t",
           "05_uncertainty_vacsr_t2i", "06_similarity_pretrained", "06_similarity_vacsr", "06_similarity_m2mix",
           "07_reliability_pretrained_i2t", "07_reliability_vacsr_t2i", "07_reliability_contrastive_i2t",
           "08_retrieval_table", "08_summary_table"]


@pytest.fixture(scope="module")
def batch(tmp_path_factory, env):
    out = tmp_path_factory.mktemp("runs")
    r = _vlmkit(["run", "--quick", "--out", str(out), "--grid", "noise_ratio=0,0.5"], env, timeout=1500)
    return out, r


@pytest.mark.slow
def test_batch_of_two_runs_executes_every_notebook(batch):
    out, r = batch
    assert r.returncode == 0, r.stderr[-3000:]
    runs = sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith("batch-"))
    assert len(runs) == 2
    for run, noise in zip(runs, (0, 0.5)):
        meta = json.loads((run / "run.json").read_text())
        assert meta["status"] == "ok" and meta["grid_point"] == {"noise_ratio": noise}
        assert meta["parameters"]["noise_ratio"] == noise and meta["vlmkit_version"] != "unknown"
        assert re.fullmatch(r"[0-9a-f]{40}", meta["git_commit"] or "")
        assert [Path(n).stem for n in meta["notebooks"]] == EXPECTED_NOTEBOOKS
        assert all(v["status"] == "ok" for v in meta["notebooks"].values())
        executed = nbformat.read(run / "notebooks" / "02_finetune.ipynb", as_version=4)
        injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert injected and f"noise_ratio = {noise}" in injected[0].source and 'methods = ["contrastive", "m2mix"]' in injected[0].source
        for name in FIGURES:
            html = run / "figures" / f"{name}.html"
            assert html.is_file(), name
            assert _plotly_points(html) > 0, f"{name} holds no data"
        assert (run / "figures" / "plotly.min.js").stat().st_size > 1_000_000  # offline viewing


@pytest.mark.slow
def test_batch_tables_hold_numbers_with_protocols(batch):
    out, _ = batch
    runs = sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith("batch-"))
    for run in runs:
        ret = pd.read_csv(run / "tables" / "retrieval.csv")
        assert set(ret.method) == {"pretrained", "contrastive", "m2mix", "vacsr"}
        assert ret.protocol.notna().all() and ret.protocol.str.contains("60x300").all()
        r1 = ret[(ret.metric == "R@1")].value
        assert r1.between(0, 100).all() and r1.notna().all()
        for name in ("gap", "calibration", "uncertainty", "census", "hardness", "similarity_by_type", "gap_shift", "slerp_path",
                     "query_topk", "primer_shift"):
            t = pd.read_csv(run / "tables" / f"{name}.csv")
            assert len(t) > 0 and t.protocol.notna().all(), name
        cal = pd.read_csv(run / "tables" / "calibration.csv")
        assert cal.ece.between(0, 100).all() and len(cal) == 8
        unc = pd.read_csv(run / "tables" / "uncertainty.csv")
        assert unc.pearson.dropna().between(-1, 1).all() and unc.fn_auroc.dropna().between(0, 1).all()
        gap = pd.read_csv(run / "tables" / "gap.csv")
        assert (gap.gap > 0).all() and set(gap.method) == {"pretrained", "contrastive", "m2mix"}
        hist = pd.read_csv(run / "tables" / "history_contrastive.csv")
        assert list(hist.epoch) == [1] and hist.rsum.notna().all()
        report = (run / "report" / "report.html").read_text()
        assert "Summary per method" in report and "vacsr" in report and "ECE" in report
    batch_dir = next(p for p in out.iterdir() if p.name.startswith("batch-"))
    summ = pd.read_csv(batch_dir / "summary.csv")
    assert len(summ) == 8 and set(summ.noise_ratio) == {0, 0.5} and (summ.status == "ok").all()
    assert summ.filter(like="R@1 i2t").notna().any(axis=None)
    # the noisy run trained on other captions: its fine-tuned embeddings differ
    a, b = (pd.read_csv(r / "tables" / "gap.csv").set_index("method").gap for r in runs)
    assert a["pretrained"] == pytest.approx(b["pretrained"]) and a["contrastive"] != pytest.approx(b["contrastive"], abs=1e-7)
    assert summarise_runs(runs).shape[0] == 8


@pytest.mark.slow
def test_failing_notebook_stops_its_chain_and_the_batch_goes_on(tmp_path, env):
    r = _vlmkit(["run", "--quick", "--only", "01,03", "--out", str(tmp_path),
                 "--grid", f"dataset=csv:{tmp_path / 'missing.csv'},shapes"], env, timeout=900)
    assert r.returncode == 1
    bad, good = sorted(p for p in tmp_path.iterdir() if p.is_dir() and not p.name.startswith("batch-"))
    meta = json.loads((bad / "run.json").read_text())
    assert meta["status"] == "failed"
    err = meta["notebooks"]["01_data_and_model.ipynb"]["error"]
    assert "01_data_and_model.ipynb" in err and "cell" in err and "missing.csv" in err
    assert "03_modality_gap.ipynb" not in meta["notebooks"]  # the chain stopped
    assert (bad / "notebooks" / "01_data_and_model.ipynb").is_file()  # what ran is kept
    assert "01_data_and_model.ipynb failed in cell" in r.stderr
    assert json.loads((good / "run.json").read_text())["status"] == "ok"
    assert (good / "figures" / "03_gap_shift.html").is_file()
    summ = pd.read_csv(next(tmp_path.glob("batch-*")) / "summary.csv")
    assert sorted(summ.status.unique()) == ["failed", "ok"]
    # continuing the good run: notebook 03 again with another parameter, records kept
    r = _vlmkit(["run", "--quick", "--run-dir", str(good), "--only", "03", "-p", "shifts", "[0.0, 1.0]"], env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    meta = json.loads((good / "run.json").read_text())
    assert set(meta["notebooks"]) == {"01_data_and_model.ipynb", "03_modality_gap.ipynb"} and len(meta["continued"]) == 1
    assert meta["parameters"]["shifts"] == [0.0, 1.0]
    assert sorted(pd.read_csv(good / "tables" / "gap_shift.csv")["shift"].unique()) == [0.0, 1.0]
    r = _vlmkit(["run", "--run-dir", str(tmp_path / "nope")], env, timeout=120)
    assert r.returncode == 2 and "not a run directory" in r.stderr


@pytest.mark.slow
@pytest.mark.skipif(not COCO_MINI.is_dir(), reason="../shared/data/coco-mini is absent")
def test_real_data_and_local_checkpoint_through_the_same_command(tmp_path, env):
    """coco-mini (80 real COCO images) as test and training data, a local checkpoint as the model."""
    import torch

    from vlmkit.models import load_model, save_model

    torch.manual_seed(0)
    save_model(load_model("vlmkit-tiny", device="cpu"), tmp_path / "ckpt")
    spec = f"coco:{COCO_MINI / 'annotations' / 'captions_train2017.json'}:{COCO_MINI / 'train2017'}"
    r = _vlmkit(["run", "--quick", "--only", "01,02,03,06,07,08", "--out", str(tmp_path / "runs"),
                 "-p", "dataset", spec, "-p", "train_dataset", spec, "-p", "pretrained", str(tmp_path / "ckpt"),
                 "-p", "val_images", "20", "-p", "methods", "contrastive"], env, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    run = next(p for p in (tmp_path / "runs").iterdir() if p.is_dir())
    ret = pd.read_csv(run / "tables" / "retrieval.csv")
    assert set(ret.method) == {"pretrained", "contrastive", "vacsr"}
    assert ret.protocol.str.contains("80x").all()
    # COCO has no extended positives: ranking metrics fall back to the labels and say so
    assert ret[ret.metric == "mAP@R"].protocol.str.startswith("one-to-one labels").all()
    assert not ret.protocol.str.contains("extended").any()
    data = json.loads((run / "data.json").read_text())
    assert data["pretrained_dir"] == str(tmp_path / "ckpt")
