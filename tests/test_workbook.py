"""The workbook: parameter cells papermill can document, every notebook executed headless
through ``vlmkit run`` (a 4-point batch, 2 seeds × 2 noise ratios, with small parameters, whose
comparison page aggregates over the seeds), the figures and tables it
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

from vlmkit.cli import QUICK, parse_grid
from vlmkit.rundir import notebooks
from vlmkit.utils import VlmkitError
from vlmkit import workbook as wb
from vlmkit.workbook import list_methods, method_summary, register_method, summarise_runs, write_table

ROOT = Path(__file__).resolve().parents[1]
COCO_MINI = ROOT.parent / "shared" / "data" / "coco-mini"
EXPECTED_NOTEBOOKS = ["00_primer", "01_data_and_model", "02_finetune", "03_modality_gap", "04_mixed_retrievals",
                      "05_uncertainty", "06_similarity_histograms", "07_reliability", "08_report",
                      "09_claims", "10_audit"]


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
    assert s.loc["b", "unc–R@1 r [one-to-one labels] i2t"] == -0.9 and s.loc["b", "FN-vs-TN AUROC of σ²"] == 0.7
    assert not [c for c in s.columns if c.endswith("pairs")]


def test_summary_ece_is_the_labels_protocol_and_the_truth_ece_its_own_column(tmp_path):
    write_table(tmp_path, "calibration", pd.DataFrame([
        {"method": "a", "direction": "i2t", "truth": "exact truth", "ece_authors": 4.5, "ece_labels": 12.5, "ece_truth": 30.0},
        {"method": "a", "direction": "t2i", "truth": "exact truth", "ece_labels": 7.0, "ece_truth": 9.0},
        {"method": "b", "direction": "i2t", "truth": "one-to-one labels", "ece_labels": 3.0}]), protocol="p")
    s = method_summary(tmp_path).set_index("method")
    assert s.loc["a", "ECE % i2t [one-to-one labels]"] == 12.5 and s.loc["a", "ECE % t2i [one-to-one labels]"] == 7.0
    assert s.loc["a", "ECE % i2t [exact truth]"] == 30.0 and s.loc["b", "ECE % i2t [one-to-one labels]"] == 3.0
    assert pd.isna(s.loc["b", "ECE % i2t [exact truth]"])
    assert s.loc["a", "ECE % i2t [authors: N×N]"] == 4.5 and pd.isna(s.loc["b", "ECE % i2t [authors: N×N]"])
    eces = [c for c in s.columns if c.startswith("ECE")]
    assert eces[0] == "ECE % i2t [authors: N×N]"  # the authors' protocol first
    assert not [c for c in s.columns if c.startswith("ECE") and "[" not in c]  # no ECE without its protocol


def _tiny_pairs():
    import numpy as np

    from vlmkit.data import ArrayImages, PairDataset

    return PairDataset("tiny", ArrayImages(np.zeros((2, 4, 4, 3), np.uint8)), ["a cat", "a dog"], [0, 1], ["0", "1"])


def test_truth_protocol_comes_from_the_data():
    from vlmkit.data import make_shapes

    assert wb.truth_protocol(make_shapes("test", n_images=4, seed=0)) == "exact truth"
    labels_only = _tiny_pairs()
    assert wb.truth_protocol(labels_only) == "one-to-one labels"
    assert wb.truth_protocol(labels_only.with_extended_positives({"0": [1]})) == "extended positives"


# --------------------------------------------------------------------------- data selection (vlmkit.selection)


def test_data_selection_is_its_own_module_and_the_workbook_re_exports_it():
    """Run-directory I/O (vlmkit.workbook) apart from data selection (vlmkit.selection); the
    notebooks' ``wb.<name>`` calls reach the one definition."""
    from vlmkit import selection

    for name in ("is_embedded", "embedded_spec", "load_test_dataset", "train_config", "training_data"):
        assert getattr(wb, name) is getattr(selection, name), name
    io = ast.parse(Path(wb.__file__).read_text())
    defined = {n.name for n in io.body if isinstance(n, ast.FunctionDef)}
    assert not defined & {"is_embedded", "embedded_spec", "load_test_dataset", "train_config", "training_data"}
    assert "load_splits" not in Path(wb.__file__).read_text() and "make_shapes" not in Path(wb.__file__).read_text()


def _pairs_csv(tmp_path: Path, n: int) -> str:
    from PIL import Image

    rows = ["filepath,caption"]
    for i in range(n):
        Image.new("RGB", (8, 8), (30 * i, 0, 0)).save(tmp_path / f"{i}.png")
        rows += [f"{i}.png,a red square number {i}", f"{i}.png,picture {i}"]
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    return f"csv:{tmp_path / 'pairs.csv'}:{tmp_path}"


def test_training_data_is_the_split_finetune_trains_on(tmp_path):
    """Real data: train_dataset less its last val_images images, with fine-tuning's noise;
    embedded data: the run's preset and seed.  Compared with what finetune loads
    (vlmkit.train.load_splits of the method's TrainConfig)."""
    import numpy as np

    from vlmkit.train import TrainConfig, load_splits

    spec = _pairs_csv(tmp_path, 6)
    run_spec = {"dataset": spec, "model": "", "pretrained_dir": ""}
    train = wb.training_data(run_spec, spec, 1, 0.5, 3, val_images=2)  # train_images: embedded data only
    ref = load_splits(TrainConfig(dataset=spec, val_images=2, noise_ratio=0.5))[0]
    assert train.num_images == 4 and list(train.image_ids) == ["0.png", "1.png", "2.png", "3.png"]
    assert train.captions == ref.captions and np.array_equal(train.caption_image, ref.caption_image)
    assert train.caption_meta["moved"].sum() == 4  # half of the 8 training captions
    cfg = wb.train_config(run_spec, "m2mix", train_dataset=spec, captions_per_image=1, seed=3)
    assert (cfg.dataset, cfg.method, cfg.captions_per_image, cfg.seed, cfg.pretrained) == (spec, "m2mix", 1, 3, None)
    with pytest.raises(VlmkitError, match="give train_dataset"):
        wb.training_data(run_spec, "", 0, 0.0, 0)

    emb = {"dataset": wb.embedded_spec("shapes", "stress"), "model": "", "pretrained_dir": "stand-in"}
    assert emb["dataset"] == "shapes:stress" and wb.embedded_spec("shapes") == "shapes" and wb.embedded_spec(spec) == spec
    train = wb.training_data(emb, "", 10, 0.4, 2, val_images=3)
    ref = load_splits(TrainConfig(dataset="shapes:stress", train_images=10, val_images=3, noise_ratio=0.4, data_seed=2))[0]
    assert train.num_images == 10 and train.captions == ref.captions
    assert np.array_equal(train.caption_meta["noisy"], ref.caption_meta["noisy"])
    assert wb.train_config(emb, "sigmoid", seed=2).pretrained == "stand-in"


def _run_notebook(number: str, run_dir: Path, **params) -> dict:
    """Run the code cells of notebook ``number`` in this process with ``params`` (and run_dir)
    over its defaults; returns the namespace (no kernel: fast on tiny data)."""
    import jupytext

    (py,) = sorted((ROOT / "notebooks").glob(f"{number}_*.py"))
    ns: dict = {"__name__": f"nb{number}"}
    for cell in jupytext.read(py).cells:
        if cell.cell_type == "code":
            exec(compile(cell.source, py.name, "exec"), ns)
            if "parameters" in cell.metadata.get("tags", []):
                ns.update(run_dir=str(run_dir), **params)
    return ns


@pytest.mark.parametrize("noise", [0.0, 0.6])
def test_02_reports_moved_and_truly_mismatched_training_captions(tmp_path, noise):
    """Notebook 02 writes the noise census of the noisy split VACSR trains on (``vacsr_noise_ratio``):
    moved captions and those truly not true of their labelled image (exact truth; stress captions
    often stay true)."""
    import numpy as np

    from vlmkit.selection import training_data

    run = wb.prepare_run_dir(tmp_path / "run")
    wb.save_data_spec(run, "shapes:stress", 4, 0, model="", pretrained_dir="stand-in")
    _run_notebook("02", run, methods=[], vacsr=False, train_images=40, val_images=4, vacsr_noise_ratio=noise, seed=1)
    t = pd.read_csv(run / "tables" / "noise_census.csv")
    (row,) = t.to_dict("records")
    ref = training_data(wb.run_data_spec(run), "", 40, noise, 1, val_images=4)
    moved, noisy = ref.caption_meta.get("moved", np.zeros(200, bool)), ref.caption_meta.get("noisy", np.zeros(200, bool))
    own = ref.positives()[ref.caption_image, np.arange(ref.num_captions)]
    assert row["n_captions"] == 200 and row["moved"] == moved.sum() == round(noise * 200)
    assert row["mismatched"] == (moved & ~own).sum() == noisy.sum()
    if noise:
        assert 0 < row["mismatched"] < row["moved"]
    assert "moved captions vs mismatched under exact truth" in row["protocol"] and f"noise_ratio {noise}" in row["protocol"]


def test_write_table_is_atomic(tmp_path, monkeypatch):
    """A write that fails half-way leaves the previous table and no temporary file."""
    path = write_table(tmp_path, "t", pd.DataFrame({"a": [1, 2]}), protocol="p")
    before = path.read_text()

    def broken(self, target, **kw):
        Path(target).write_text("a,b\n1")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken)
    with pytest.raises(OSError, match="disk full"):
        write_table(tmp_path, "t", pd.DataFrame({"a": [3]}))
    assert path.read_text() == before and [p.name for p in (tmp_path / "tables").iterdir()] == ["t.csv"]


def _coco_with_an_uncaptioned_image(tmp_path: Path) -> str:
    from PIL import Image

    (tmp_path / "imgs").mkdir()
    images, anns = [], []
    for i in (1, 2, 3):
        Image.new("RGB", (16, 16), (80 * i, 40, 0)).save(tmp_path / "imgs" / f"{i}.jpg")
        images.append({"id": i, "file_name": f"{i}.jpg"})
    for k, (img, text) in enumerate([(1, "a red square"), (1, "a square"), (2, "a brown square"), (2, "a dark square")]):
        anns.append({"id": 10 + k, "image_id": img, "caption": text})
    (tmp_path / "ann.json").write_text(json.dumps({"images": images, "annotations": anns}))
    return f"coco:{tmp_path / 'ann.json'}:{tmp_path / 'imgs'}"


def test_headless_run_on_real_data_lists_the_loaders_skips_in_run_json(tmp_path, env):
    """``vlmkit run`` on a COCO file with an image that has no caption (a documented skip):
    notebook 01's entry in run.json lists it with file and image id, and the runner prints it
    (about 10 s: one kernel, two images)."""
    spec = _coco_with_an_uncaptioned_image(tmp_path)
    r = _vlmkit(["run", "--quick", "--only", "01", "--out", str(tmp_path / "runs"), "-p", "dataset", spec], env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    (run,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    meta = json.loads((run / "run.json").read_text())
    (entry,) = meta["notebooks"]["01_data_and_model.ipynb"]["skipped"]
    assert entry["role"] == "test" and entry["count"] == 1
    assert entry["items"] == [{"where": f"{tmp_path / 'ann.json'}:3", "reason": "image has no (usable) caption; left out"}]
    assert "1 item(s) left out" in r.stderr


# --------------------------------------------------------------------------- figures inline


class _Shown(list):
    """Captures what wb.show hands to the notebook display."""


@pytest.fixture
def shown(monkeypatch):
    from vlmkit.viz import io as viz_io

    out = _Shown()
    monkeypatch.setattr(wb, "_display", out.append)
    monkeypatch.setattr(wb, "_INLINE", {"bytes": 0, "noted": False})
    monkeypatch.setattr(viz_io, "_PNG_STATE", {"ok": None, "note": ""})
    monkeypatch.delenv("VLMKIT_NO_PNG", raising=False)
    return out


def _fake_png_export(monkeypatch, size=(1800, 1200)):
    """PNG export without Chromium: write_image draws a plain image of ``size``."""
    import plotly.graph_objects as go
    from PIL import Image

    def write_image(self, path, *a, **k):
        Image.new("RGB", size, (200, 30, 30)).save(path, format="PNG")

    monkeypatch.setattr(go.Figure, "write_image", write_image)


def _scatter(name="trace-xyz"):
    import plotly.graph_objects as go

    return go.Figure(go.Scatter(x=[1, 2, 3], y=[3, 1, 2], name=name), layout={"title": {"text": "a title"}})


def test_show_embeds_a_downscaled_png_and_the_interactive_figure(tmp_path, shown, monkeypatch):
    import base64
    import io

    from PIL import Image

    _fake_png_export(monkeypatch)
    out = wb.show(_scatter(), tmp_path, "01_x")
    assert set(out) == {"html", "png"} and (tmp_path / "figures" / "01_x.png").is_file()
    (bundle,) = shown
    png = base64.b64decode(bundle["image/png"])
    with Image.open(io.BytesIO(png)) as im:
        assert im.size == (800, 533)  # scaled down from 1800×1200, aspect kept
    plot = bundle["application/vnd.plotly.v1+json"]
    assert plot["data"][0]["name"] == "trace-xyz" and plot["layout"]["title"]["text"] == "a title"
    assert "text/html" not in bundle and "figures/01_x.html" in bundle["text/plain"]
    assert sum(len(json.dumps(v)) for v in bundle.values()) < 100_000  # no plotly.js in the notebook
    rec = wb.export_status(tmp_path)
    assert rec["static_figures"] is True and rec["figures"]["01_x"] == {"png": True, "interactive_inline": True}


def test_show_without_png_export_embeds_the_interactive_figure_says_so_and_records_it(tmp_path, shown, monkeypatch, capsys):
    monkeypatch.setenv("VLMKIT_NO_PNG", "1")
    wb.show(_scatter(), tmp_path, "a")
    wb.show(_scatter(), tmp_path, "b")
    assert [sorted(b) for b in shown] == [["application/vnd.plotly.v1+json", "text/plain"]] * 2
    assert capsys.readouterr().out.count("note: no static (PNG) export") == 1  # said once per notebook
    rec = json.loads((tmp_path / "figures" / "_export.json").read_text())
    assert rec["static_figures"] is False and rec["note"] and set(rec["figures"]) == {"a", "b"}
    # a later figure with a PNG does not make the run static: "a" and "b" still have none
    monkeypatch.delenv("VLMKIT_NO_PNG")
    _fake_png_export(monkeypatch, size=(300, 200))
    wb.show(_scatter(), tmp_path, "c")
    assert "image/png" in shown[-1] and wb.export_status(tmp_path)["static_figures"] is False
    monkeypatch.setenv("VLMKIT_NO_PNG", "0")
    wb.show(_scatter(), tmp_path, "a")  # rerun with PNGs everywhere: now static
    wb.show(_scatter(), tmp_path, "b")
    assert wb.export_status(tmp_path)["static_figures"] is True


def test_show_keeps_a_notebook_under_its_figure_budget(tmp_path, shown, monkeypatch):
    import plotly.graph_objects as go

    monkeypatch.setenv("VLMKIT_NO_PNG", "1")
    monkeypatch.setattr(wb, "INLINE_BUDGET", 60_000)
    big = go.Figure(go.Scatter(x=list(range(3000)), y=[float(i % 7) for i in range(3000)]))  # lists: ~50 kB of JSON
    for i in range(3):
        wb.show(big, tmp_path, f"big{i}")
    embedded = ["application/vnd.plotly.v1+json" in b for b in shown]
    assert embedded == [True, False, False]
    assert "not embedded" in shown[1]["text/plain"] and "figures/big1.html" in shown[1]["text/plain"]
    assert (tmp_path / "figures" / "big2.html").is_file()  # still saved
    assert wb._INLINE["bytes"] <= 60_000
    rec = wb.export_status(tmp_path)["figures"]
    assert rec["big0"]["interactive_inline"] and not rec["big2"]["interactive_inline"]


def test_show_under_papermill_puts_the_figure_into_the_executed_notebook(tmp_path, monkeypatch):
    """A two-cell notebook run by papermill: the executed file holds the figure output."""
    book = nbformat.v4.new_notebook()
    book.cells = [nbformat.v4.new_code_cell('run_dir = "x"'), nbformat.v4.new_code_cell(
        "import plotly.graph_objects as go\nfrom vlmkit import workbook as wb\n"
        "wb.show(go.Figure(go.Bar(x=['a', 'b'], y=[1, 2], name='bars-77')), run_dir, '00_bars')")]
    book.cells[0].metadata["tags"] = ["parameters"]
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(book, tmp_path / "in.ipynb")
    monkeypatch.setenv("VLMKIT_NO_PNG", "1")  # the kernel inherits it: no Chromium start in a fast test
    pm.execute_notebook(str(tmp_path / "in.ipynb"), str(tmp_path / "out.ipynb"), parameters={"run_dir": str(tmp_path / "run")},
                        kernel_name="python3", progress_bar=False, cwd=str(tmp_path))
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    data = [o["data"] for c in out.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "display_data"]
    assert len(data) == 1 and data[0]["application/vnd.plotly.v1+json"]["data"][0]["name"] == "bars-77"
    text = "".join(o.get("text", "") for c in out.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "stream")
    assert "no static (PNG) export" in text
    assert wb.export_status(tmp_path / "run")["static_figures"] is False


# --------------------------------------------------------------------------- executing the workbook

FIGURES = ["00_random_init_cones", "00_temperature_gap", "01_census", "01_example_captions", "03_gap_per_method",
           "00_shift", "03_gap_shift", "03_embeddings_pretrained_pca", "03_embeddings_contrastive_pca", "03_embeddings_m2mix_pca",
           "03_embeddings_pretrained_pca3d", "04_slerp_path", "04_hardness", "05_fig3_vacsr_i2t",
           "05_fig3_vacsr_t2i", "06_similarity_pretrained", "06_similarity_vacsr", "06_similarity_m2mix",
           "07_reliability_pretrained_i2t", "07_reliability_vacsr_t2i", "07_reliability_contrastive_i2t",
           "08_retrieval_table", "08_summary_table"]


@pytest.fixture(scope="module")
def batch(tmp_path_factory, env):
    out = tmp_path_factory.mktemp("runs")
    # two runs keep the suite short; the noise_ratio axis of the comparison page (line figures with
    # bands) is tested on fake runs in tests/test_batch.py and tests/test_browser.py.  --jobs 2: the
    # two chains side by side, one thread each (a chain keeps about one core busy)
    r = _vlmkit(["run", "--quick", "--out", str(out), "--grid", "seeds=0,1", "-p", "noise_ratio", "0.5", "--jobs", "2"],
                {**env, "OMP_NUM_THREADS": "1"}, timeout=2400)
    return out, r


@pytest.mark.slow
def test_batch_of_two_runs_executes_every_notebook(batch):
    out, r = batch
    assert r.returncode == 0, r.stderr[-3000:]
    assert "ERROR" not in r.stdout + r.stderr  # a clean run's log: no kernel "KeyboardInterrupt caught" at shutdown
    runs = sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith("batch-"))
    assert len(runs) == 2
    for run, (seed, noise) in zip(runs, ((0, 0.5), (1, 0.5))):
        meta = json.loads((run / "run.json").read_text())
        assert meta["status"] == "ok" and meta["grid_point"] == {"seed": seed}
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
        # every figure is inline in its executed notebook (interactive only here: VLMKIT_NO_PNG=1), each notebook < 5 MB
        inline = {}
        for path in sorted((run / "notebooks").glob("*.ipynb")):
            assert path.stat().st_size < 5_000_000, f"{path.name}: {path.stat().st_size} bytes"
            for cell in nbformat.read(path, as_version=4).cells:
                for o in cell.get("outputs", []):
                    if o.output_type == "display_data" and "application/vnd.plotly.v1+json" in o.data:
                        inline[o.data["text/plain"].split(":")[0].removeprefix("figure ")] = o.data["application/vnd.plotly.v1+json"]
        assert set(FIGURES) <= set(inline), set(FIGURES) - set(inline)
        assert all(fig["data"] for fig in inline.values())
        export = json.loads((run / "figures" / "_export.json").read_text())
        assert export["static_figures"] is False and set(FIGURES) <= set(export["figures"])


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
        assert cal.ece_labels.between(0, 100).all() and cal.ece_truth.between(0, 100).all() and len(cal) == 8
        assert cal.ece_authors.between(0, 100).all() and cal.protocol.str.contains("authors: first caption per image").all()
        assert (cal.truth == "exact truth").all() and cal.protocol.str.contains("correct = one-to-one labels").all()
        unc = pd.read_csv(run / "tables" / "uncertainty.csv")
        assert unc.pearson.dropna().between(-1, 1).all() and unc.fn_auroc.dropna().between(0, 1).all()
        gap = pd.read_csv(run / "tables" / "gap.csv")
        assert (gap.gap > 0).all() and set(gap.method) == {"pretrained", "contrastive", "m2mix"}
        hist = pd.read_csv(run / "tables" / "history_contrastive.csv")
        assert list(hist.epoch) == [1] and hist.rsum.notna().all()
        report = (run / "report" / "report.html").read_text()
        assert "Summary per method" in report and "vacsr" in report and "ECE % i2t [one-to-one labels]" in report
        assert "ECE % i2t [exact truth]" in report
    batch_dir = next(p for p in out.iterdir() if p.name.startswith("batch-"))
    summ = pd.read_csv(batch_dir / "summary.csv")
    assert len(summ) == 8 and set(summ.seed) == {0, 1} and (summ.status == "ok").all()
    assert summ.filter(like="R@1 i2t").notna().any(axis=None)
    # the two seeds fine-tuned differently: their fine-tuned embeddings differ
    a, b = (pd.read_csv(r / "tables" / "gap.csv").set_index("method").gap for r in runs[:2])
    assert a["contrastive"] != pytest.approx(b["contrastive"], abs=1e-7)
    assert summarise_runs(runs).shape[0] == 8


@pytest.mark.slow
def test_batch_page_aggregates_over_seeds(batch):
    """The comparison page of the 2-seed grid: summary_by_seed.csv against a hand computation
    from summary.csv, a figure with error bars and the difference panel per headline metric."""
    from vlmkit.batch import load

    out, _ = batch
    folder = next(p for p in out.iterdir() if p.name.startswith("batch-"))
    summ = pd.read_csv(folder / "summary.csv")
    by = pd.read_csv(folder / "summary_by_seed.csv", dtype={"seeds": str, "missing_seeds": str})
    r1 = next(c for c in summ.columns if c.startswith("R@1 i2t"))
    checked = 0
    for method, g in summ.groupby("method"):
        a, b = g.sort_values("seed")[r1]
        row = by[(by.method == method) & (by.metric == r1)].iloc[0]
        assert (row.n, row.seeds) == (2, "0,1")
        assert row["mean"] == pytest.approx((a + b) / 2) and row.sd == pytest.approx(abs(a - b) / 2 ** 0.5)
        assert row.ci95_hi - row["mean"] == pytest.approx(12.706204736174698 * abs(a - b) / 2)  # t(0.975, 1) · sd / √2
        checked += 1
    assert checked == 4
    s = summ.set_index(["method", "seed"])[r1]
    d = [s["m2mix", k] - s["contrastive", k] for k in (0, 1)]
    row = by[(by.method == "m2mix − contrastive") & (by.metric == r1)].iloc[0]
    assert row.kind == "paired difference" and row["mean"] == pytest.approx(sum(d) / 2)
    b = load(folder)
    names = list(b.figures())
    assert len(names) >= 6 and all(n.endswith("_vs_method") for n in names)  # R@1 both ways, RSUM, gap, ECE, Fig. 3's r
    for n in names:  # a seeds-only grid: one bar per method with its interval as error bars
        html = (folder / "figures" / f"{n}.html").read_text()
        assert _plotly_points(folder / "figures" / f"{n}.html") > 0 and '"error_y"' in html, n
    page = (folder / "report.html").read_text()
    assert page.count("<iframe class=plotly src='figures/") == len(names)  # VLMKIT_NO_PNG=1: interactive figures
    assert "Every cell holds every seed; no run was left out." in page and "mean ± sd over seeds" in page


@pytest.mark.slow
def test_failing_notebook_stops_its_chain_and_the_batch_goes_on(tmp_path, env):
    r = _vlmkit(["run", "--quick", "--only", "01,03", "--out", str(tmp_path), "--jobs", "2",  # the two points side by side
                 "--grid", f"dataset=csv:{tmp_path / 'missing.csv'},shapes"], {**env, "OMP_NUM_THREADS": "1"}, timeout=900)
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
    """coco-mini (80 real COCO images) as test and training data; the model as docs/workbook.md
    documents it: an architecture other than the default and a weights file
    (``-p model vlmkit-base -p pretrained w.safetensors``), which every load in 01/02 must honour."""
    import torch
    from safetensors.torch import save_file

    from vlmkit.models import load_model

    torch.manual_seed(0)
    weights = tmp_path / "vlmkit_base.safetensors"
    save_file({k: v.contiguous() for k, v in load_model("vlmkit-base", device="cpu").model.state_dict().items()}, str(weights))
    spec = f"coco:{COCO_MINI / 'annotations' / 'captions_train2017.json'}:{COCO_MINI / 'train2017'}"
    r = _vlmkit(["run", "--quick", "--only", "01,02,03,06,07,08", "--out", str(tmp_path / "runs"),
                 "-p", "dataset", spec, "-p", "train_dataset", spec, "-p", "model", "vlmkit-base", "-p", "pretrained", str(weights),
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
    assert data["pretrained_dir"] == str(weights) and data["model"] == "vlmkit-base"
    # labels only: no table and no figure claims exact truth; the summary's ECE is the labels one
    for table in (run / "tables").glob("*.csv"):
        assert not pd.read_csv(table).get("protocol", pd.Series(dtype=str)).astype(str).str.contains("exact truth").any(), table.name
    cal = pd.read_csv(run / "tables" / "calibration.csv")
    assert "ece_labels" in cal and "ece_truth" not in cal
    assert "ECE % i2t [one-to-one labels]" in pd.read_csv(run / "tables" / "summary.csv")
    for fig in (run / "figures").glob("0[5-8]_*.html"):
        assert "exact truth" not in fig.read_text(), fig.name


def test_method_temperature_takes_the_recorded_tau_logit_scores_one_and_a_given_value():
    from vlmkit.workbook import method_temperature

    reg = {"pretrained": {"score_kind": "cosine", "tau": 0.067}, "contrastive": {"score_kind": "cosine", "tau": 0.05},
           "old": {"score_kind": "cosine"}, "vacsr": {"score_kind": "logit", "tau": 0.05}}
    assert method_temperature(reg, "contrastive") == 0.05
    assert method_temperature(reg, "old") == 0.067  # no record: the pretrained model's
    assert method_temperature(reg, "vacsr") == 1.0  # logits are already scaled
    assert method_temperature(reg, "contrastive", 0.01) == 0.01
    assert method_temperature({"x": {}}, "x") == 0.01  # nothing recorded at all: CLIP's τ
