"""The notebooks as code: each ``notebooks/NN_name.py`` (jupytext py:percent) is the source of
the paired ``NN_name.ipynb``; the pair must agree cell by cell, the committed ``.ipynb`` must be
clean (no outputs, no execution counts), and the ``.py`` sources must pass pyflakes.

Static checks on the sources (fast, no kernel): no warning filters, protocol labels taken from
the data in 05–08, and ``load_model`` given the run's model name wherever it loads a weights
file or tag."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

jupytext = pytest.importorskip("jupytext")

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
SOURCES = sorted(NB_DIR.glob("[0-9][0-9]_*.py"))
NOTEBOOKS = sorted(NB_DIR.glob("[0-9][0-9]_*.ipynb"))


def _cells(book) -> list[tuple[str, str, list[str]]]:
    """What a pair must agree on: type, source and tags of every cell."""
    return [(c.cell_type, c.source.strip(), sorted(c.metadata.get("tags", []))) for c in book.cells]


def _code(path: Path) -> str:
    """The code cells of a notebook source, joined (what runs in the kernel)."""
    return "\n".join(c.source for c in jupytext.read(path).cells if c.cell_type == "code")


def test_every_notebook_has_a_py_percent_source_and_no_generator_remains():
    assert [p.stem for p in SOURCES] == [p.stem for p in NOTEBOOKS] and len(SOURCES) == 11
    assert not (NB_DIR / "_build.py").exists()
    for py in SOURCES:
        head = py.read_text().split("# ---", 2)[1]
        assert "formats: ipynb,py:percent" in head, py.name
        assert "format_name: percent" in head, py.name


@pytest.mark.parametrize("py", SOURCES, ids=lambda p: p.stem)
def test_pair_is_in_sync_and_ipynb_is_clean(py):
    ipynb = py.with_suffix(".ipynb")
    book = nbformat.read(ipynb, as_version=4)
    nbformat.validate(book)
    assert book.metadata.get("jupytext", {}).get("formats") == "ipynb,py:percent", ipynb.name
    ks = book.metadata.get("kernelspec", {})
    assert ks.get("name") == "python3" and "/" not in json.dumps(ks), f"{ipynb.name}: kernelspec {ks} is not generic"
    assert _cells(jupytext.read(py)) == _cells(book), (
        f"{py.name} and {ipynb.name} differ: run `jupytext --sync notebooks/*.py` and commit both")
    for c in book.cells:
        if c.cell_type == "code":
            assert not c.outputs and c.execution_count is None, f"{ipynb.name} cell {c.id} is committed with outputs"
    ids = [c.id for c in book.cells]
    assert len(set(ids)) == len(ids), f"{ipynb.name}: duplicate cell ids"
    tagged = [c for c in book.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, ipynb.name


def test_sync_keeps_cell_ids_when_a_cell_is_inserted(tmp_path):
    """Editing the .py and syncing keeps the ids of existing cells (clean diffs of the .ipynb)."""
    src = SOURCES[4]
    for p in (src, src.with_suffix(".ipynb")):
        shutil.copy(p, tmp_path / p.name)
    py, ipynb = tmp_path / src.name, tmp_path / src.with_suffix(".ipynb").name
    before = [c.id for c in nbformat.read(ipynb, as_version=4).cells]
    text = py.read_text()
    first_code = text.index("\n# %%\n")
    py.write_text(text[:first_code] + "\n# %%\nprint('a new cell')\n" + text[first_code:])
    from jupytext.cli import jupytext as jupytext_cli

    jupytext_cli(["--quiet", "--sync", str(py)])  # what `jupytext --sync notebooks/*.py` does
    after = [c.id for c in nbformat.read(ipynb, as_version=4).cells]
    assert len(after) == len(before) + 1
    new = [i for i in after if i not in before]
    assert len(new) == 1 and [i for i in after if i != new[0]] == before


def test_sources_pass_pyflakes():
    pytest.importorskip("pyflakes")
    r = subprocess.run([sys.executable, "-m", "pyflakes", *map(str, SOURCES)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_sources_parse_as_python():
    for py in SOURCES:
        ast.parse(py.read_text(), filename=str(py))


# --------------------------------------------------------------------------- what the sources do


def test_no_notebook_silences_warnings():
    """SkippedItemsWarning, rejected caches, COCO 1K skips must reach a headless user."""
    for py in SOURCES:
        tree = ast.parse(_code(py))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                assert node.func.attr not in ("filterwarnings", "simplefilter", "resetwarnings"), f"{py.name} filters warnings"
        assert "PYTHONWARNINGS" not in _code(py), py.name


@pytest.mark.parametrize("number", ["05", "06", "07", "08"])
def test_protocol_labels_come_from_the_data(number):
    """No hard-coded "exact truth" in tables or titles: wb.truth_protocol(ds) says what "true" is."""
    (py,) = [p for p in SOURCES if p.name.startswith(number)]
    code = _code(py)
    assert "exact truth" not in code.lower(), f"{py.name} hard-codes 'exact truth' in its code"
    assert "wb.truth_protocol(ds)" in code, py.name


def _run_sources(numbers: list[str], run_dir: Path) -> None:
    """Run the code cells of notebooks ``numbers`` in this process (parameters at their defaults,
    ``run_dir`` set): no kernel, so it is fast on tiny data."""
    for number in numbers:
        (py,) = [p for p in SOURCES if p.name.startswith(number)]
        ns: dict = {"__name__": f"nb{number}"}
        for cell in jupytext.read(py).cells:
            if cell.cell_type != "code":
                continue
            exec(compile(cell.source, f"{py.name}", "exec"), ns)
            if "parameters" in cell.metadata.get("tags", []):
                ns["run_dir"] = str(run_dir)


def _tiny_run(tmp_path: Path, dataset: str, n_images: int) -> Path:
    """A run directory as 01/02 leave it: data.json, a cosine method and an uncertainty method."""
    import numpy as np
    import torch

    from vlmkit import workbook as wb

    run = wb.prepare_run_dir(tmp_path / "run")
    wb.save_data_spec(run, dataset, n_images, 0, model="vlmkit-tiny", pretrained_dir="")
    ds = wb.run_dataset(run)
    g = torch.Generator().manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(ds.num_images, 8, generator=g), dim=1)
    pos = torch.as_tensor(ds.positives()).float()  # a caption lies near every image it is true of
    txt = torch.nn.functional.normalize(pos.T @ img + 0.3 * torch.randn(ds.num_captions, 8, generator=g), dim=1)
    wb.register_method(run, "pretrained", img=img, txt=txt, info={"score_kind": "cosine"})
    s = 10 * (img @ txt.T)
    wb.register_method(run, "vacsr", scores=s, uncertainty=torch.sigmoid(-s + torch.randn(s.shape, generator=g)), info={"score_kind": "logit"})
    assert ds.num_images == n_images and np.all(ds.caption_image < n_images)
    return run


@pytest.fixture
def shown_titles(monkeypatch):
    """Figure titles the notebooks show (wb.show captured; no files, no PNG export)."""
    from vlmkit import workbook as wb

    titles: list[str] = []
    monkeypatch.setattr(wb, "show", lambda fig, run, name: titles.append(f"{name}: {fig.layout.title.text}") or {})
    return titles


def _protocol_texts(run: Path) -> str:
    import pandas as pd

    return "\n".join(f"{p.stem}: {'; '.join(map(str, pd.read_csv(p).get('protocol', pd.Series(dtype=str)).unique()))}"
                      for p in sorted((run / "tables").glob("*.csv")))


def test_05_to_08_on_labels_only_data_never_claim_exact_truth(tmp_path, shown_titles):
    """Real data without extended positives: every protocol and title says one-to-one labels, the
    calibration has only the labels ECE, and the summary's ECE names that protocol."""
    import pandas as pd
    from PIL import Image

    rows = ["filepath,caption"]
    for i in range(6):
        Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(tmp_path / f"{i}.png")
        rows += [f"{i}.png,a red square number {i}", f"{i}.png,picture {i}"]
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    run = _tiny_run(tmp_path, f"csv:{tmp_path / 'pairs.csv'}:{tmp_path}", 6)
    _run_sources(["05", "06", "07", "08"], run)
    text = "\n".join(shown_titles) + "\n" + _protocol_texts(run)
    assert "exact truth" not in text and "extended positives" not in text, text
    assert "correct = one-to-one labels" in text and "05_fig3_vacsr_i2t" in text and "07_reliability_pretrained_t2i:" in text
    cal = pd.read_csv(run / "tables" / "calibration.csv")
    assert "ece_labels" in cal and "ece_truth" not in cal and cal.ece_labels.between(0, 100).all()
    summary = pd.read_csv(run / "tables" / "summary.csv")
    assert "ECE % i2t [one-to-one labels]" in summary and not [c for c in summary if "exact truth" in c]


def test_05_to_08_on_the_embedded_data_name_exact_truth_and_keep_both_eces(tmp_path, shown_titles):
    import pandas as pd

    run = _tiny_run(tmp_path, "shapes", 12)
    _run_sources(["05", "06", "07", "08"], run)
    titles = "\n".join(shown_titles)
    from vlmkit import workbook as wb

    name = wb.run_dataset(run).name
    assert f"05_fig3_vacsr_i2t: vacsr ({name}) — i2t, correct = one-to-one labels (the paper's protocol), equal-width bins" in titles
    unc = pd.read_csv(run / "tables" / "uncertainty.csv")
    assert {"pearson", "pearson_control", "pearson_truth", "fn_auroc", "fn_auroc_control"} <= set(unc.columns)
    assert unc.fn_auroc_control.notna().any() and "05_sigma2_hist_vacsr" in titles  # the score's own AUROC; σ² by pair type
    rng = pd.read_csv(run / "tables" / "sigma2_range_vacsr.csv")
    assert list(rng.pair_type) == ["positive (labelled)", "false negative (true, unlabelled)", "true negative"] and (rng.q05 <= rng.q95).all()
    fig3 = pd.read_csv(run / "tables" / "fig3_summary_vacsr.csv")
    assert set(fig3.protocol) == {"labels", "exact truth"} and set(fig3.source) == {"sigma2", "-score"}
    assert "07_reliability_gallery_vacsr_i2t_truth" in titles and "correct = exact truth" in titles and "correct = one-to-one labels" in titles
    assert "07_reliability_vacsr_i2t: vacsr i2t — authors' protocol" in titles  # the authors' view comes first, under the plain name
    cal = pd.read_csv(run / "tables" / "calibration.csv")
    assert cal.ece_authors.between(0, 100).all() and cal.accuracy_authors.between(0, 1).all()
    assert cal[["ece_labels", "ece_truth"]].notna().all(axis=None) and (cal.truth == "exact truth").all()
    assert (cal.ece_labels != cal.ece_truth).any()  # top-1 false negatives: the two protocols differ here
    assert "correct = exact truth" in _protocol_texts(run)
    summary = pd.read_csv(run / "tables" / "summary.csv").set_index("method")
    a = summary.loc["pretrained"]
    row = cal[(cal.method == "pretrained") & (cal.direction == "i2t")].iloc[0]
    assert a["ECE % i2t [one-to-one labels]"] == pytest.approx(row.ece_labels) and a["ECE % i2t [exact truth]"] == pytest.approx(row.ece_truth)


def _load_model_calls(py: Path) -> list[ast.Call]:
    tree = ast.parse(_code(py))
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", getattr(n.func, "attr", None)) == "load_model"]


def test_load_model_always_gets_the_run_model_name():
    """A weights file or an open_clip tag needs the architecture (``-p model ViT-B-32 -p pretrained
    w.safetensors``); without it load_model builds the default vlmkit-tiny and fails to load."""
    calls = {py.name: _load_model_calls(py) for py in SOURCES}
    assert len(calls["01_data_and_model.py"]) >= 1 and len(calls["02_finetune.py"]) >= 2
    for name, found in calls.items():
        for call in found:
            has_name = bool(call.args) or any(k.arg == "name" for k in call.keywords)
            assert has_name, f"{name} line {call.lineno}: load_model(...) without the model name"
            arg = ast.unparse(call.args[0]) if call.args else ""
            assert arg in ("model", 'spec["model"]', "spec['model']"), f"{name} line {call.lineno}: load_model({arg}, ...)"


def test_data_notebooks_record_what_loaders_skipped():
    """``vlmkit run`` folds ``vlmkit.kernel.record_skipped`` into run.json: 01 records the test
    data, 02 the training data it loads itself (VACSR on frozen features)."""
    assert 'record_skipped(ds, "test")' in _code(SOURCES[1])
    assert 'record_skipped(train, "train")' in _code(SOURCES[2])


def test_08_report_shows_the_warnings_and_skips_vlmkit_run_recorded(tmp_path, shown_titles):
    import json

    run = _tiny_run(tmp_path, "shapes", 12)
    (run / "run.json").write_text(json.dumps({"notebooks": {"02_finetune": {
        "warnings": [{"category": "UserWarning", "message": "feature cache rejected: stale", "count": 2, "where": "features.py:90"}],
        "skipped": [{"dataset": "csv-x", "role": "train", "count": 3, "items": [{"where": "x.csv row 7", "reason": "image missing"}]}]}}}))
    _run_sources(["08"], run)
    html = (run / "report" / "report.html").read_text()
    assert "feature cache rejected: stale" in html and "x.csv row 7: image missing" in html
    assert "Warnings" in html and "Skipped items" in html
