"""``vlmkit run`` as a runner: unknown parameters are rejected (the known ones come from the
notebooks' ``parameters`` cells), warnings reach ``run.json`` (a dataset skip included),
``--run-dir`` hands the notebooks the merged parameters, the kernel spec is per-virtualenv
and written atomically, and a built wheel runs the workbook outside the checkout.

The runner tests execute a two-notebook stand-in workbook written here (``notebook_dir`` is
pointed at it), so they start real kernels through papermill but stay a few seconds each."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

import nbformat
import pandas as pd
import papermill as pm
import pytest
from PIL import Image

from vlmkit import cli, rundir

ROOT = Path(__file__).resolve().parents[1]


def _notebook(path: Path, params: str, *code: str) -> None:
    book = nbformat.v4.new_notebook()
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = nbformat.v4.new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    book.cells = [cell, *(nbformat.v4.new_code_cell(c) for c in code)]
    nbformat.write(book, path)


SEEN = """import json
from pathlib import Path
Path(run_dir, "seen_{nb}.json").write_text(json.dumps({{k: globals()[k] for k in {keys!r}}}))"""

WARN = """import warnings
for _ in range(3):
    warnings.warn("once per line", UserWarning)  # default filters: displayed once
with warnings.catch_warnings():
    warnings.simplefilter("always")
    for _ in range(3):
        warnings.warn("every time", RuntimeWarning)
if table:
    from vlmkit.data import load_dataset
    from vlmkit.kernel import record_skipped
    ds = load_dataset("csv:" + table, on_error="skip")  # a bad row: skipped and warned
    assert record_skipped(ds, "train") == 1
    folder = load_dataset("folder:" + str(Path(table).parent / "imgs"))  # a stray file: left out by design, not warned
    assert record_skipped(folder, "test") == 1"""


@pytest.fixture()
def workbook(tmp_path, monkeypatch):
    """Two stand-in notebooks (00 declares alpha, beta, table; 01 declares beta, gamma) and a
    caption table with one good row and one whose image is missing (a documented skip)."""
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    Image.new("RGB", (8, 8), "red").save(tmp_path / "a.png")
    (tmp_path / "t.csv").write_text("filepath,caption\na.png,a red square\nmissing.png,a lost image\n")
    (tmp_path / "imgs" / "red").mkdir(parents=True)
    shutil.copy(tmp_path / "a.png", tmp_path / "imgs" / "red" / "a.png")
    (tmp_path / "imgs" / "notes.txt").write_text("not an image")
    _notebook(nbs / "00_first.ipynb",
              'run_dir: str = "x"  # run directory\nalpha: int = 1  # first\nbeta: int = 2  # second\n'
              'table: str = ""  # caption table',
              SEEN.format(nb="00", keys=["alpha", "beta"]), WARN)
    _notebook(nbs / "01_second.ipynb", 'run_dir: str = "x"  # run directory\nbeta: int = 2  # second\ngamma: str = "g"  # third',
              SEEN.format(nb="01", keys=["beta", "gamma"]))
    monkeypatch.setattr(rundir, "notebook_dir", lambda: nbs)
    for var in ("VLMKIT_HEADLESS", "VLMKIT_PROGRESS_INTERVAL", "JUPYTER_PATH", "PYTHONWARNINGS"):
        monkeypatch.setenv(var, "")  # records the original value, restored after the test (main() sets some)
        monkeypatch.delenv(var)
    monkeypatch.setenv("VLMKIT_CACHE", str(tmp_path / "cache"))
    return tmp_path


def _runs(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith("batch-"))


# --------------------------------------------------------------------------- unknown parameters


def test_unknown_parameter_is_an_error_naming_it_and_the_known_ones(workbook, capsys):
    out = workbook / "runs"
    assert cli.main(["run", "--out", str(out), "-p", "alpah", "3"]) == 2
    err = capsys.readouterr().err
    assert "unknown parameter 'alpah' (from -p); did you mean 'alpha'?" in err
    lines = {ln.split()[0]: ln.split(None, 1)[1] for ln in err.splitlines() if ln.startswith("  ")}
    assert lines == {"alpha": "00_first", "beta": "00_first, 01_second", "gamma": "01_second", "table": "00_first"}
    assert not out.exists()  # nothing ran

    (workbook / "p.yaml").write_text("alpha: 2\nbta: 3\n")
    assert cli.main(["run", "--out", str(out), "--config", str(workbook / "p.yaml")]) == 2
    err = capsys.readouterr().err
    assert f"'bta' (from --config {workbook / 'p.yaml'}); did you mean 'beta'?" in err

    assert cli.main(["run", "--out", str(out), "--grid", "gama=1,2"]) == 2
    assert "'gama' (from --grid); did you mean 'gamma'?" in capsys.readouterr().err

    assert cli.main(["run", "--out", str(out), "-p", "zzz_unrelated", "1"]) == 2
    err = capsys.readouterr().err
    assert "unknown parameter 'zzz_unrelated'" in err and "did you mean" not in err

    assert cli.main(["run", "--out", str(out), "-p", "run_dir", "/elsewhere"]) == 2
    assert "'run_dir' (from -p) is set by vlmkit run" in capsys.readouterr().err
    assert cli.main(["run", "--out", str(out), "--only", "00,07"]) == 2
    assert "--only 07: no such notebook" in capsys.readouterr().err
    assert not out.exists()


def test_known_parameters_are_read_from_the_real_notebooks():
    declared = cli.declared_parameters()
    union: dict[str, set] = {}
    for nb in rundir.notebooks():
        for k in pm.inspect_notebook(str(nb)):
            union.setdefault(k, set()).add(nb.stem)
    assert {k: set(v) for k, v in declared.items()} == {k: v for k, v in union.items() if k != "run_dir"}
    assert "noise_ratio" in declared and "run_dir" not in declared
    with pytest.raises(cli.VlmkitError, match=r"'noise_rato' \(from -p\); did you mean 'noise_ratio'\?") as exc:
        cli.check_parameters({"seed": "from -p", "noise_rato": "from -p"}, declared)
    assert "02_finetune" in str(exc.value)


# --------------------------------------------------------------------------- warnings, continuation


def test_warnings_are_recorded_per_notebook_in_run_json(workbook, capsys):
    out = workbook / "runs"
    table = str(workbook / "t.csv")
    assert cli.main(["run", "--out", str(out), "-p", "table", table]) == 0
    err = capsys.readouterr().err
    assert os.environ.get("PYTHONWARNINGS") is None  # the runner silences nothing
    (run,) = _runs(out)
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "ok"
    warned = {w["message"].split(":")[0] if w["category"] == "SkippedItemsWarning" else w["message"]: w
              for w in meta["notebooks"]["00_first.ipynb"]["warnings"]}
    assert warned["once per line"]["count"] == 1 and warned["once per line"]["category"] == "UserWarning"
    assert warned["every time"]["count"] == 3 and warned["every time"]["category"] == "RuntimeWarning"
    skip = warned[table]  # the dataset's documented skip, as a headless user sees it
    assert skip["category"] == "SkippedItemsWarning" and "skipped 1 bad item" in skip["message"] and "row 3" in skip["message"]
    assert meta["notebooks"]["01_second.ipynb"]["warnings"] == meta["notebooks"]["01_second.ipynb"]["skipped"] == []
    assert "00_first.ipynb warning: SkippedItemsWarning" in err and "warning (×3): RuntimeWarning: every time" in err
    # dataset.skipped of both loads, the by-design skip (never warned) included
    skipped = {s["role"]: s for s in meta["notebooks"]["00_first.ipynb"]["skipped"]}
    assert skipped["train"]["count"] == 1 and skipped["train"]["items"][0]["where"] == f"{table}:row 3"
    assert skipped["test"]["count"] == 1 and skipped["test"]["items"][0]["where"].endswith("notes.txt")
    assert "left out" in skipped["test"]["items"][0]["reason"]
    assert "test data folder" in err and "1 item(s) left out; first: " in err
    assert list(rundir.skipped_table(run)["role"]) == ["train", "test"]
    assert not list((run / "notebooks").glob("*.jsonl"))  # the per-notebook logs are folded into run.json
    rows = rundir.warnings_table(run)
    assert set(rows.category) == {"UserWarning", "RuntimeWarning", "SkippedItemsWarning"}
    assert (rows.notebook == "00_first.ipynb").all() and rows.loc[rows.message == "every time", "count"].item() == 3


def test_run_dir_continuation_passes_the_merged_parameters(workbook):
    out = workbook / "runs"
    assert cli.main(["run", "--out", str(out), "-p", "alpha", "5"]) == 0
    (run,) = _runs(out)
    assert json.loads((run / "seen_01.json").read_text()) == {"beta": 2, "gamma": "g"}
    assert cli.main(["run", "--run-dir", str(run), "--only", "01", "-p", "gamma", "h"]) == 0
    assert cli.main(["run", "--run-dir", str(run), "-p", "beta", "7"]) == 0
    assert json.loads((run / "seen_00.json").read_text()) == {"alpha": 5, "beta": 7}  # alpha from the first call
    assert json.loads((run / "seen_01.json").read_text()) == {"beta": 7, "gamma": "h"}  # gamma from the second
    meta = json.loads((run / "run.json").read_text())
    assert meta["parameters"] == {"alpha": 5, "beta": 7, "gamma": "h"}
    assert [c["parameters"] for c in meta["continued"]] == [{"gamma": "h"}, {"beta": 7}]
    assert meta["status"] == "ok" and len(_runs(out)) == 1


def test_a_parameter_of_a_notebook_not_run_is_noted(workbook, capsys):
    assert cli.main(["run", "--out", str(workbook / "runs"), "--only", "01", "-p", "alpha", "4"]) == 0
    assert "note: alpha is declared only by 00_first, which this call does not run" in capsys.readouterr().err


MEET = """import json, os, time
from pathlib import Path
Path(meet, f"{who}.here").write_text(str(os.getppid()))  # the kernel's parent: the chain's runner process
other = Path(meet, f"{3 - who}.here")
deadline = time.time() + 300
while not other.exists():  # only a chain that runs while the other one does gets past this
    assert time.time() < deadline, f"point {who}: the other grid point never ran beside this one"
    time.sleep(0.2)
Path(run_dir, "met.json").write_text(json.dumps({"who": who, "runner": os.getppid(), "other_runner": int(other.read_text())}))"""


def test_jobs_runs_grid_points_at_once_each_chain_in_its_own_process(tmp_path, monkeypatch, capsys):
    """``--jobs 2``: the two grid points' notebooks wait for each other (a chain run after the
    other would time out and fail), each in a kernel of its own runner process; the batch
    summary and the exit code are as with one job."""
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _notebook(nbs / "00_meet.ipynb", 'run_dir: str = "x"  # run directory\nmeet: str = ""  # shared folder\nwho: int = 0  # 1 or 2', MEET)
    monkeypatch.setattr(rundir, "notebook_dir", lambda: nbs)
    for var in ("VLMKIT_HEADLESS", "VLMKIT_PROGRESS_INTERVAL", "JUPYTER_PATH", "OMP_NUM_THREADS"):
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)
    monkeypatch.setenv("VLMKIT_CACHE", str(tmp_path / "cache"))
    (tmp_path / "meet").mkdir()
    out = tmp_path / "runs"
    assert cli.main(["run", "--out", str(out), "--grid", "who=1,2", "-p", "meet", str(tmp_path / "meet"), "--jobs", "2"]) == 0
    assert "running 2 grid points, 2 at a time (--jobs)" in capsys.readouterr().out
    runs = _runs(out)
    met = [json.loads((r / "met.json").read_text()) for r in runs]
    assert [m["who"] for m in met] == [1, 2]
    assert met[0]["runner"] == met[1]["other_runner"] != met[1]["runner"] == met[0]["other_runner"] != os.getpid()
    for r, who in zip(runs, (1, 2)):
        meta = json.loads((r / "run.json").read_text())
        assert meta["status"] == "ok" and meta["grid_point"] == {"who": who} and list(meta["notebooks"]) == ["00_meet.ipynb"]
    summ = pd.read_csv(next(out.glob("batch-*")) / "summary.csv")
    assert sorted(summ.who) == [1, 2] and (summ.status == "ok").all()
    assert cli.main(["run", "--out", str(out), "--grid", "who=1,2", "--jobs", "0"]) == 2
    assert "--jobs 0: expected the number of grid points to run at once" in capsys.readouterr().err


# --------------------------------------------------------------------------- kernel spec


def _as_interpreter(monkeypatch, prefix: Path) -> None:
    monkeypatch.setattr(sys, "prefix", str(prefix))
    monkeypatch.setattr(sys, "executable", str(prefix / "bin" / "python"))


def test_each_virtualenv_keeps_its_own_kernel_spec(tmp_path, monkeypatch):
    from jupyter_client.kernelspec import KernelSpecManager

    monkeypatch.setenv("VLMKIT_CACHE", str(tmp_path / "shared-cache"))
    monkeypatch.setenv("JUPYTER_PATH", "")
    names = {}
    for env in ("venv-a", "venv-b", "venv-a"):
        _as_interpreter(monkeypatch, tmp_path / env)
        names[env] = cli.ensure_kernel()
    assert names["venv-a"] != names["venv-b"]
    specs = sorted((tmp_path / "shared-cache").rglob("kernel.json"))
    assert len(specs) == 2
    for env, name in names.items():
        spec = KernelSpecManager().get_kernel_spec(name)  # found through JUPYTER_PATH
        assert spec.argv[0] == str(tmp_path / env / "bin" / "python")


def test_kernel_spec_is_replaced_atomically(tmp_path, monkeypatch):
    """A stale spec is replaced by a new file (rename), never rewritten in place: a hard link to
    the old file keeps the old bytes, so a concurrent reader never sees a half-written one."""
    monkeypatch.setenv("VLMKIT_CACHE", str(tmp_path))
    monkeypatch.setenv("JUPYTER_PATH", "")
    name = cli.ensure_kernel()
    path = tmp_path / "jupyter" / "kernels" / name / "kernel.json"
    path.write_text('{"argv": ["/gone/python"]}')
    os.link(path, tmp_path / "reader-view")
    assert cli.ensure_kernel() == name
    assert json.loads(path.read_text())["argv"][0] == sys.executable
    assert json.loads((tmp_path / "reader-view").read_text())["argv"] == ["/gone/python"]
    assert [p.name for p in path.parent.iterdir()] == ["kernel.json"]  # no temporary left behind


# --------------------------------------------------------------------------- packaging


def test_notebooks_come_from_the_checkout_first(monkeypatch, tmp_path):
    assert rundir.notebook_dir() == ROOT / "notebooks"
    monkeypatch.setattr(rundir, "CHECKOUT", tmp_path)  # as if installed: no checkout around the package
    assert rundir.notebook_dir() == rundir.PACKAGED_NOTEBOOKS and rundir.git_commit() is None


@pytest.mark.slow
def test_wheel_ships_the_notebooks_and_runs_outside_the_checkout(tmp_path):
    """sdist → wheel (offline, the build backend of this venv), installed into a fresh virtualenv
    that sees this venv's packages (nothing downloaded); ``vlmkit run --quick --only 00`` from a
    folder outside the checkout executes the packaged notebook."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("vlmkit", "notebooks"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "_notebooks", "*.egg-info"))
    quiet = {**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    sdist = subprocess.run([sys.executable, "-c", "from setuptools import build_meta as b; print(b.build_sdist('dist'))"],
                           cwd=src, capture_output=True, text=True, env=quiet, timeout=300)
    assert sdist.returncode == 0, sdist.stderr[-2000:]
    with tarfile.open(src / "dist" / sdist.stdout.split()[-1]) as tar:
        tar.extractall(tmp_path / "sdist", filter="data")
    (unpacked,) = (tmp_path / "sdist").iterdir()
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                        "-w", str(tmp_path / "wheels"), str(unpacked)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    (wheel,) = (tmp_path / "wheels").glob("vlmkit-*.whl")

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    here = sysconfig.get_paths()["purelib"]  # this venv's dependencies, visible after the new venv's own
    Path(site, "_vlmkit_test_deps.pth").write_text(f"import site; site.addsitedir({here!r})\n")
    r = subprocess.run([py, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", str(wheel)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert Path(site, "vlmkit", "_notebooks", "00_primer.ipynb").is_file()

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "VLMKIT_CACHE": str(tmp_path / "cache"), "VLMKIT_NO_PNG": "1", "VLMKIT_NO_PROGRESS": "1"}
    env.pop("JUPYTER_PATH", None)
    env.pop("PYTHONPATH", None)  # the installed copy, not a checkout put on the path by the caller
    r = subprocess.run([venv / "bin" / "vlmkit", "run", "--quick", "--only", "00", "--out", "runs"], cwd=work, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "without encryption" not in r.stderr  # ipykernel's localhost TCP notice is not shown per notebook
    (run,) = _runs(work / "runs")
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "ok" and meta["notebooks"]["00_primer.ipynb"]["status"] == "ok"
    assert meta["python"] == str(py) and meta["git_commit"] is None
    executed = nbformat.read(run / "notebooks" / "00_primer.ipynb", as_version=4)
    assert any(c.get("outputs") for c in executed.cells if c.cell_type == "code")
    where = subprocess.run([py, "-c", "import vlmkit.rundir as r; print(r.notebook_dir())"], cwd=work, capture_output=True,
                           text=True, check=True, env=env).stdout.strip()
    assert where == str(Path(site, "vlmkit", "_notebooks"))
