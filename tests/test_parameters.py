"""A run that feels finished (issue 22, point 5): ``-p`` values become the type the notebook
declares (``-p lr 1e-5`` is a float; a non-number for a float names the parameter and the
notebook), training errors name the notebook parameter to change, the kernel is shut down
without the SIGINT that logged ``KeyboardInterrupt caught in kernel``, and a table written by
``write_table`` reads back bit for bit."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import nbformat
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from vlmkit import cli, rundir
from vlmkit import workbook as wb
from vlmkit.parameters import coerce, coerce_all
from vlmkit.utils import VlmkitError

F = {"02_finetune": "float"}


def test_float_parameters_take_scientific_text_and_ints():
    assert coerce("lr", "1e-5", F) == 1e-05 and isinstance(coerce("lr", "1e-5", F), float)
    assert coerce("lr", 1, F) == 1.0 and isinstance(coerce("lr", 1, F), float)
    assert coerce("lr", 0.5, F) == 0.5
    assert coerce("lr", " 2E-3 ", F) == 0.002


@pytest.mark.parametrize("value, why", [("fast", "is not a number"), (True, "is a bool"), ([1e-5], "is a list")])
def test_a_non_number_for_a_float_names_the_parameter_and_the_notebook(value, why):
    with pytest.raises(VlmkitError) as exc:
        coerce("lr", value, F, "from -p")
    msg = str(exc.value)
    assert msg.startswith(f"parameter 'lr' (from -p): {value!r} {why}")
    assert "notebook 02_finetune declares `lr: float`" in msg


def test_ints_bools_and_text():
    i = {"01_data_and_model": "int", "02_finetune": "int"}
    assert coerce("test_images", 5000, i) == 5000
    assert coerce("test_images", "5e3", i) == 5000 and isinstance(coerce("test_images", "5e3", i), int)
    assert coerce("test_images", 200.0, i) == 200
    for bad in ("many", 2.5, "2.5", False):
        with pytest.raises(VlmkitError, match=r"'test_images'.*notebook 01_data_and_model, 02_finetune declares `test_images: int`"):
            coerce("test_images", bad, i)
    b = {"02_finetune": "bool"}
    assert coerce("vacsr", False, b) is False
    with pytest.raises(VlmkitError, match="is not true or false"):
        coerce("vacsr", "maybe", b)
    s = {"01_data_and_model": "str"}
    assert coerce("pretrained", 1.0, s, raw="1.0") == "1.0" and coerce("pretrained", 7, s) == "7"
    assert coerce("pretrained", "stand-in", s) == "stand-in"
    # lists and parameters declared with two types pass unchanged
    assert coerce("methods", ["a"], {"02_finetune": "list"}) == ["a"]
    assert coerce("x", "1e-5", {"a": "float", "b": "str"}) == "1e-5"
    assert coerce_all({"lr": "1e-5", "quick": True}, {"lr": F}) == {"lr": 1e-5, "quick": True}


def _notebook(path: Path) -> None:
    book = nbformat.v4.new_notebook()
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = nbformat.v4.new_code_cell('run_dir: str = "x"  # run directory\nlr: float = 0.1  # learning rate\n'
                                     'n: int = 2  # a count\nname: str = "a"  # a name')
    cell.metadata["tags"] = ["parameters"]
    book.cells = [cell, nbformat.v4.new_code_cell(
        "import json\nfrom pathlib import Path\n"
        "Path(run_dir, 'seen.json').write_text(json.dumps({k: [globals()[k], type(globals()[k]).__name__] for k in ('lr', 'n', 'name')}))")]
    nbformat.write(book, path)


@pytest.fixture()
def one_notebook(tmp_path, monkeypatch):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _notebook(nbs / "00_only.ipynb")
    monkeypatch.setattr(rundir, "notebook_dir", lambda: nbs)
    for var in ("VLMKIT_HEADLESS", "VLMKIT_PROGRESS_INTERVAL", "JUPYTER_PATH"):
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)
    monkeypatch.setenv("VLMKIT_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_run_hands_the_notebook_its_declared_types(one_notebook, capfd):
    out = one_notebook / "runs"
    assert cli.main(["run", "--out", str(out), "-p", "lr", "1e-5", "-p", "n", "3e1", "-p", "name", "1.0"]) == 0
    run = next(out.iterdir())
    assert json.loads((run / "seen.json").read_text()) == {"lr": [1e-05, "float"], "n": [30, "int"], "name": ["1.0", "str"]}
    assert json.loads((run / "run.json").read_text())["parameters"] == {"lr": 1e-05, "n": 30, "name": "1.0"}
    captured = capfd.readouterr()  # the kernel's own stderr included: a clean shutdown logs no error
    assert "ERROR" not in captured.err + captured.out and "KeyboardInterrupt" not in captured.err

    assert cli.main(["run", "--out", str(out), "-p", "lr", "fast"]) == 2
    err = capfd.readouterr().err
    assert "parameter 'lr' (from -p): 'fast' is not a number; notebook 00_only declares `lr: float`" in err
    assert cli.main(["run", "--out", str(out), "--grid", "n=1,2.5"]) == 2
    assert "parameter 'n' (from --grid): 2.5 is not a whole number; notebook 00_only declares `n: int`" in capfd.readouterr().err
    assert len(list(out.iterdir())) == 1  # nothing ran for the rejected calls


def test_kernel_manager_skips_the_interrupt_only_while_shutting_down():
    import asyncio

    from vlmkit.kernel import quiet_kernel_manager

    km = quiet_kernel_manager()()
    calls = []

    async def signal(sig):  # what the base class uses to interrupt a kernel started with interrupt_mode "signal"
        calls.append(sig)

    km._async_signal_kernel = signal
    km.provisioner = SimpleNamespace(has_process=True)  # has_kernel
    km._kernel_spec = SimpleNamespace(interrupt_mode="signal")
    km.shutting_down = True
    asyncio.run(km._async_interrupt_kernel())
    assert calls == []
    km.shutting_down = False
    asyncio.run(km._async_interrupt_kernel())
    assert len(calls) == 1


def test_training_errors_name_the_notebook_parameter(tmp_path):
    from vlmkit.selection import training_data

    for i in range(3):
        Image.new("RGB", (8, 8), (i * 80, 0, 0)).save(tmp_path / f"{i}.png")
    (tmp_path / "t.csv").write_text("filepath,caption\n" + "".join(f"{i}.png,image {i}\n" for i in range(3)))
    spec = {"dataset": "csv:" + str(tmp_path / "t.csv")}
    with pytest.raises(VlmkitError) as exc:
        training_data(spec, spec["dataset"], 100, 0.0, 0, val_images=200)
    msg = str(exc.value)
    assert "has 3 images, not more than val_images=200" in msg and "-p val_images N" in msg and "val_dataset" not in msg
    assert training_data(spec, spec["dataset"], 100, 0.0, 0, val_images=1).num_images == 2
    with pytest.raises(VlmkitError, match=r"TrainConfig\.lr=.*\(set by the notebook parameter lr: -p lr VALUE\)"):
        wb.train_config({"dataset": "shapes"}, "contrastive", lr=-1.0)


def test_data_errors_name_the_notebook_parameter():
    from vlmkit.selection import embedded_spec, load_test_dataset

    with pytest.raises(VlmkitError, match=r"n_images must be a positive integer, got 0 \(set by the notebook parameter test_images: -p test_images VALUE\)"):
        load_test_dataset("shapes", 0)
    with pytest.raises(VlmkitError, match=r"'coc'.* shapes preset.*\(set by the notebook parameter shapes_preset: -p shapes_preset VALUE\)"):
        embedded_spec("shapes", "coc")


def test_tables_read_back_bit_for_bit(tmp_path):
    rng = np.random.default_rng(0)
    values = np.concatenate([[100 * 0.702, 0.1 + 0.2, 1e-300, 1 / 3], rng.random(500) * 10.0 ** rng.integers(-8, 8, 500)])
    df = pd.DataFrame({"method": "m", "value": values})
    wb.write_table(tmp_path, "t", df, protocol="p")
    back = wb.read_table(tmp_path, "t")
    assert back["value"].to_numpy().tobytes() == values.tobytes()
    assert (back["protocol"] == "p").all()
