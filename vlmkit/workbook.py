"""Run-directory helpers shared by the numbered notebooks and ``vlmkit run``.

Layout of one run directory (``docs/workbook.md``)::

    run.json            parameters, vlmkit version, git commit, status per notebook
                        (read and written by :mod:`vlmkit.rundir` only)
    notebooks/          executed notebooks (NN_name.ipynb)
    cache/              pretrained checkpoint and feature caches (may be shared)
    methods.json        registry: method name → score file and description
    scores/<m>.pt       per method: test features (img, txt)
    scores/<m>.*.npy    per method: float32 score (+ uncertainty) matrices, memory-mapped when read
    methods/<m>/        fine-tuning output (checkpoints) of each method
    tables/*.csv        every table, each with a ``protocol`` column
    figures/*.html|png  every view of every notebook
    figures/_export.json  how figures were embedded (``static_figures``: false without a PNG exporter)
    report/report.html  the report (08)

Which data a run evaluates and trains on is :mod:`vlmkit.selection` (re-exported here:
``is_embedded``, ``embedded_spec``, ``load_test_dataset``, ``train_config``,
``training_data``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .selection import (embedded_spec, is_embedded, load_test_dataset, train_config,  # noqa: F401 (re-exported)
                        training_data)
from .rundir import SUBDIRS, prepare_run_dir, read_run_meta  # noqa: F401 (re-exported: wb.prepare_run_dir)
from .utils import NpyRowWriter, ReleasingMemmap, VlmkitError, atomic_to_csv, atomic_torch_save, atomic_write_json


def default_cache_dir() -> Path:
    """``$VLMKIT_CACHE`` or ``~/.cache/vlmkit``: where the stand-in checkpoint is kept across runs."""
    return Path(os.environ.get("VLMKIT_CACHE", Path.home() / ".cache" / "vlmkit"))


def headless() -> bool:
    """True under papermill / ``vlmkit run`` (``VLMKIT_HEADLESS=1``) or outside a Jupyter kernel."""
    if os.environ.get("VLMKIT_HEADLESS", "") not in ("", "0"):
        return True
    try:
        from IPython import get_ipython

        ip = get_ipython()
        return ip is None or "IPKernelApp" not in ip.config
    except Exception:
        return True


MATRICES = ("scores", "uncertainty")
"""The N × M matrices of a method, stored as float32 ``scores/<m>.<matrix>.npy`` and read back
memory-mapped (:func:`load_method`): notebooks read them in row blocks, never whole."""


def load_matrix(path: str | os.PathLike) -> np.ndarray:
    """A stored ``.npy`` matrix, memory-mapped read-only as a :class:`ReleasingMemmap` (read it
    in row blocks; its resident pages stay about one block)."""
    m = np.load(path, mmap_mode="r")
    return m.view(ReleasingMemmap) if isinstance(m, np.memmap) else m


def _save_matrix(x: Any, path: Path, block_rows: int = 1024) -> None:
    """``x`` (N × M tensor or array) as a float32 ``.npy`` at ``path``, atomically, in row blocks."""
    t = x.detach().cpu() if isinstance(x, torch.Tensor) else x
    if len(t.shape) != 2:
        raise VlmkitError(f"{path.name}: expected an N × M matrix, got shape {tuple(t.shape)}")
    with NpyRowWriter(path, tuple(t.shape)) as out:
        for a in range(0, t.shape[0], block_rows):
            blk = t[a:a + block_rows]
            out[a:a + len(blk)] = (blk.float().numpy() if isinstance(blk, torch.Tensor)
                                   else np.asarray(blk, np.float32))


def register_method(run_dir: str | os.PathLike, name: str, *, img: Any = None, txt: Any = None, scores: Any = None,
                    uncertainty: Any = None, info: dict | None = None) -> Path:
    """Store a method's test-set outputs and list it in ``methods.json``.

    Give features (``img`` N×d, ``txt`` M×d) and/or a score matrix (N×M, optional uncertainty).
    Features go to ``scores/<name>.pt``; each matrix to ``scores/<name>.<scores|uncertainty>.npy``
    (float32, written atomically), which :func:`load_method` memory-maps.  Returns the ``.pt`` path.
    To write matrices too large to hold, block by block, use :func:`register_scored_method`.
    """
    if (img is None) != (txt is None):
        raise VlmkitError(f"register_method({name!r}): give both img and txt features, or neither")
    if img is None and scores is None:
        raise VlmkitError(f"register_method({name!r}): nothing to store (no features, no scores)")
    if scores is None and uncertainty is not None:
        raise VlmkitError(f"register_method({name!r}): uncertainty without scores")
    run = prepare_run_dir(run_dir)
    for key, x in (("scores", scores), ("uncertainty", uncertainty)):
        mpath = run / "scores" / f"{name}.{key}.npy"
        if x is None:
            mpath.unlink(missing_ok=True)
            continue
        if tuple(x.shape) != tuple(scores.shape):
            raise VlmkitError(f"register_method({name!r}): {key} has shape {tuple(x.shape)}, "
                              f"scores {tuple(scores.shape)}")
        _save_matrix(x, mpath)
    return _register(run, name, img, txt, scores is not None, uncertainty is not None, info)


def _register(run: Path, name: str, img: Any, txt: Any, has_scores: bool, has_unc: bool, info: dict | None) -> Path:
    """Write ``scores/<name>.pt`` (the features) and the registry entry; the matrices are on disk."""
    blob = {k: (torch.as_tensor(v).detach().cpu().float() if v is not None else None)
            for k, v in {"img": img, "txt": txt}.items()}
    blob.update(scores=None, uncertainty=None)  # the matrices are in their own .npy files
    path = run / "scores" / f"{name}.pt"
    matrices = {key: f"scores/{name}.{key}.npy"
                for key, has in (("scores", has_scores), ("uncertainty", has_unc)) if has}
    atomic_torch_save(blob, path)
    reg = list_methods(run)
    reg[name] = {"path": str(path.relative_to(run)), "has_features": img is not None,
                 "has_scores": has_scores, "has_uncertainty": has_unc, **(info or {}),
                 "matrices": matrices}
    atomic_write_json(run / "methods.json", reg)
    return path


def register_scored_method(run_dir: str | os.PathLike, name: str, score: Any, shape: tuple[int, int], *,
                           info: dict | None = None) -> Path:
    """Register a method whose N × M score and uncertainty matrices are written block by block:
    ``score(out)`` gets ``out`` = two :class:`NpyRowWriter` (``scores/<name>.scores.npy``,
    ``scores/<name>.uncertainty.npy``) and fills them in row order — e.g.
    ``lambda out: score_all(adapter, img, txt, out=out)`` — so no N × M matrix is held in memory
    (VACSR at COCO 5K: two 477 MiB matrices).  Both files appear only once complete.  Returns
    the ``.pt`` path, as :func:`register_method`."""
    run = prepare_run_dir(run_dir)
    shape = (int(shape[0]), int(shape[1]))
    with NpyRowWriter(run / "scores" / f"{name}.scores.npy", shape) as s, \
            NpyRowWriter(run / "scores" / f"{name}.uncertainty.npy", shape) as u:
        score((s, u))
    return _register(run, name, None, None, True, True, info)


def method_temperature(registry: dict[str, dict], name: str, temperature: float = 0.0) -> float:
    """The softmax τ for calibrating method ``name`` of a run's registry: ``temperature`` when > 0;
    else the τ the method recorded (``info["tau"]``: the model's own learned τ, written by
    notebooks 01/02; 1 for logit scores, VACSR's); else the pretrained entry's; else 0.01 (CLIP's)."""
    if temperature > 0:
        return float(temperature)
    info = registry.get(name, {})
    if info.get("score_kind") == "logit":
        return 1.0
    if info.get("tau"):
        return float(info["tau"])
    return float(registry.get("pretrained", {}).get("tau") or 0.01)


def list_methods(run_dir: str | os.PathLike) -> dict[str, dict]:
    """The method registry (empty when nothing is registered yet)."""
    p = Path(run_dir) / "methods.json"
    return json.loads(p.read_text()) if p.exists() else {}


def load_method(run_dir: str | os.PathLike, name: str, *, cosine: bool = True) -> dict[str, Any]:
    """``{"img", "txt", "scores", "uncertainty"}`` of a registered method.

    Features are tensors; a stored score / uncertainty matrix is a read-only float32
    ``np.memmap`` (read it in row blocks: :mod:`vlmkit.metrics.streaming`, ``vlmkit.metrics``'
    ``Scores``, :func:`vlmkit.vacsr.fig3_report` all do), or a tensor from a run written before
    the ``.npy`` layout.  With ``cosine`` (default), ``scores`` is filled with the cosine
    similarities of the features when only features were stored (an N × M float32 tensor)."""
    reg = list_methods(run_dir)
    if name not in reg:
        raise VlmkitError(f"method {name!r} is not registered in {run_dir}/methods.json (has {sorted(reg)})")
    info = reg[name]
    blob = torch.load(Path(run_dir) / info["path"], map_location="cpu", weights_only=True)
    for key, rel in (info.get("matrices") or {}).items():
        p = Path(run_dir) / rel
        if not p.is_file():
            raise VlmkitError(f"{p}: missing (method {name!r} of {run_dir}/methods.json): "
                              "run the notebook that registered it again")
        blob[key] = load_matrix(p)  # memory-mapped; reading a block gives back the pages of the one before
    for key in MATRICES:
        blob.setdefault(key, None)
    if blob.get("scores") is None and cosine and blob.get("img") is not None:
        blob["scores"] = blob["img"] @ blob["txt"].T
    return blob


def write_table(run_dir: str | os.PathLike, name: str, df: pd.DataFrame, protocol: str | None = None) -> Path:
    """Write ``tables/<name>.csv``; adds a ``protocol`` column when given and absent."""
    df = df.copy()
    if protocol is not None and "protocol" not in df.columns:
        df.insert(0, "protocol", protocol)
    path = Path(run_dir) / "tables" / f"{name}.csv"
    atomic_to_csv(df, path, index=False)
    return path


def read_table(run_dir: str | os.PathLike, name: str) -> pd.DataFrame | None:
    p = Path(run_dir) / "tables" / f"{name}.csv"
    return pd.read_csv(p) if p.exists() else None


EXPORT_RECORD = "figures/_export.json"
"""Per run directory: how each figure was embedded; ``static_figures`` is false when any lacks a PNG."""
INLINE_BUDGET = 4_000_000
"""Bytes of figure outputs one kernel (one notebook) embeds; past it figures are saved, not embedded."""
INLINE_MAX_JSON = 1_000_000
"""Largest interactive (plotly JSON) output embedded per figure; larger ones are linked, not embedded."""
_INLINE: dict[str, Any] = {"bytes": 0, "noted": False}


def _display(bundle: dict) -> None:
    """Show a mimetype bundle in the running IPython kernel; print its text line elsewhere."""
    try:
        from IPython.core.interactiveshell import InteractiveShell
        from IPython.display import display

        if InteractiveShell.initialized():
            display(bundle, raw=True)
            return
    except ImportError:
        pass
    print(bundle["text/plain"])


def show(fig: Any, run_dir: str | os.PathLike, name: str) -> dict:
    """Save ``fig`` as ``figures/<name>.html|png`` and embed it in the notebook's output.

    The output is one display bundle (:func:`vlmkit.viz.display_bundle`): a PNG scaled down to
    800 px (when the PNG export works) that any notebook viewer shows, the interactive plotly
    output (plotly mimetype, no plotly.js) that JupyterLab and VS Code render offline, and a text
    line naming the files.  Under papermill the executed notebook therefore carries every figure.
    A kernel embeds at most :data:`INLINE_BUDGET` bytes of figures (then only saves them), and a
    figure's interactive JSON only up to :data:`INLINE_MAX_JSON` bytes, so an executed notebook
    stays under 5 MB.  Without a PNG exporter (no Chromium) the figure is embedded interactive
    only, the notebook output says so once, and ``figures/_export.json`` records
    ``static_figures: false``.  Returns the saved paths.
    """
    from .viz import display_bundle, save_figure
    from .viz.io import PLOTLY_MIME, bundle_bytes

    run = Path(run_dir)
    out = save_figure(fig, run / "figures" / name)
    files = ", ".join(f"figures/{p.name}" for p in out.values())
    room = INLINE_BUDGET - _INLINE["bytes"]
    bundle = display_bundle(fig, out.get("png"), f"figure {name}: {files}", max_json_bytes=min(INLINE_MAX_JSON, room))
    if bundle_bytes(bundle) > room:
        bundle.pop("image/png", None)
    if PLOTLY_MIME not in bundle and "image/png" not in bundle:
        bundle["text/plain"] += " (not embedded: too large for this notebook's figure budget; open the HTML file)"
    _INLINE["bytes"] += bundle_bytes(bundle)
    if "png" not in out and not _INLINE["noted"]:
        _INLINE["noted"] = True
        print("note: no static (PNG) export of figures here (kaleido needs a Chromium: apt-get install chromium; "
              "or VLMKIT_NO_PNG is set): figures are embedded as interactive plotly outputs, which JupyterLab shows "
              "offline but static viewers do not; every figure is also saved as figures/<name>.html")
    _display(bundle)
    _record_export(run, name, png="png" in out, interactive=PLOTLY_MIME in bundle)
    return out


def _record_export(run: Path, name: str, *, png: bool, interactive: bool) -> None:
    path = run / EXPORT_RECORD
    try:
        rec = json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError:
        rec = {}
    figs = rec.get("figures", {})
    figs[name] = {"png": png, "interactive_inline": interactive}
    static = all(f["png"] for f in figs.values())
    atomic_write_json(path, {"static_figures": static,
                             "note": "" if static else "some figures have no static PNG (no Chromium for kaleido, "
                                                       "or VLMKIT_NO_PNG): their executed notebooks embed the "
                                                       "interactive plotly output only",
                             "figures": figs})


def export_status(run_dir: str | os.PathLike) -> dict | None:
    """``figures/_export.json`` of a run (``static_figures``, ``note``, per figure ``png`` /
    ``interactive_inline``), or None before any figure was shown."""
    p = Path(run_dir) / EXPORT_RECORD
    return json.loads(p.read_text()) if p.is_file() else None


def truth_protocol(ds: Any) -> str:
    """What "true" / "positive" means for ``ds``, as table protocols and figure titles say it:
    ``"exact truth"`` (the generator knows every pair), ``"extended positives"`` (user-given
    positive sets added to the labels, e.g. ECCV Caption) or ``"one-to-one labels"`` (real data
    without extended positives: ``ds.positives()`` are the labels)."""
    if ds.has_exact_truth:
        return "exact truth"
    return "extended positives" if ds.has_extended_positives else "one-to-one labels"


def parse_methods(methods: Any) -> list[str]:
    """A method list from a list, or a string split on ``,`` / ``+`` / spaces (grid-friendly)."""
    if methods is None:
        return []
    if isinstance(methods, str):
        import re

        return [m for m in re.split(r"[,+\s]+", methods) if m]
    return [str(m) for m in methods]


SUMMARY_METRICS = (("coco5k", "i2t", "R@1"), ("coco5k", "t2i", "R@1"), ("coco5k", "both", "RSUM"),
                   ("eccv", "i2t", "mAP@R"), ("eccv", "t2i", "mAP@R"))


def summarise_runs(run_dirs: list[str | os.PathLike]) -> pd.DataFrame:
    """One row per (run, method): the run's parameters, then the key numbers of ``tables/summary.csv``.

    Runs without a summary (failed early) get one row with ``status`` from ``run.json``.
    """
    rows = []
    for rd in run_dirs:
        rd = Path(rd)
        meta = read_run_meta(rd)
        params = {k: (",".join(map(str, v)) if isinstance(v, list) else v)
                  for k, v in meta.get("grid_point", {}).items()}
        base = {"run": rd.name, "status": meta.get("status", "unknown"), **params}
        summ = read_table(rd, "summary")
        if summ is None or summ.empty:
            rows.append(base)
            continue
        for rec in summ.to_dict("records"):
            rows.append({**base, **rec})
    return pd.DataFrame(rows)


def save_data_spec(run_dir: str | os.PathLike, dataset: str, test_images: int, seed: int, **extra: Any) -> None:
    """Record which evaluation data the run uses (``data.json``), so later notebooks rebuild it."""
    atomic_write_json(Path(run_dir) / "data.json", {"dataset": dataset, "test_images": int(test_images),
                                                    "seed": int(seed), **extra})


def run_data_spec(run_dir: str | os.PathLike) -> dict:
    p = Path(run_dir) / "data.json"
    if not p.exists():
        raise VlmkitError(f"{p} is missing: run notebook 01_data_and_model with this run_dir first")
    return json.loads(p.read_text())


def run_dataset(run_dir: str | os.PathLike):
    """The evaluation dataset recorded in ``data.json`` (rebuilt deterministically; the embedded
    split's rendered images are kept in the run's ``cache/`` after the first notebook renders them)."""
    spec = run_data_spec(run_dir)
    return load_test_dataset(spec["dataset"], spec["test_images"], spec["seed"], image_cache=Path(run_dir) / "cache")


def method_summary(run_dir: str | os.PathLike) -> pd.DataFrame:
    """One row per method from the run's tables: R@1 and RSUM (full split, one-to-one labels),
    mAP@R (extended positives), gap, ECE per direction and uncertainty–R@1 Pearson r.

    Column names carry the protocol (``R@1 i2t [full NxM]`` …), so the table states it.  The
    first ECE is the m²-Mix authors' protocol (``ECE % i2t [authors: N×N]``: one caption per
    image, softmax over the N candidates, correct = the diagonal; notebook 07); then the gallery
    view with correct = the labelled match (``ECE % i2t [one-to-one labels]``) and, when the data
    has a truth, correct = true (``ECE % i2t [exact truth]``).
    """
    from .measurements import summary

    return summary(*(read_table(run_dir, t) for t in ("retrieval", "calibration", "gap", "uncertainty")))


def pair_codes(run_dir: str | os.PathLike, ds: Any) -> np.ndarray:
    """Every test pair's type code (:func:`vlmkit.metrics.streaming.pair_code_matrix`: 0 labelled
    and true, 1 false negative, 2 true negative, 3 labelled but not true) as a read-only int8
    memmap, computed once per run and data (the truth is the slow part: ≈ 1 µs a pair on the
    embedded data) and kept in ``cache/pair_codes-<data>.npy`` for notebooks 05–07 (written block
    by block through :class:`vlmkit.utils.NpyRowWriter`: atomic, one row block in memory)."""
    import hashlib

    from .metrics.streaming import block_pair_codes, row_blocks

    run = Path(run_dir)
    spec = json.dumps(run_data_spec(run), sort_keys=True)
    tag = hashlib.sha1(f"{spec}|{ds.num_images}x{ds.num_captions}".encode()).hexdigest()[:12]
    path = run / "cache" / f"pair_codes-{tag}.npy"
    if not path.is_file():  # written atomically in row blocks: the N × M codes are never all in memory
        with NpyRowWriter(path, (ds.num_images, ds.num_captions), np.int8) as out:
            for rows in row_blocks(ds.num_images, ds.num_captions):
                out[rows] = block_pair_codes(ds, rows)
    codes = load_matrix(path)
    if codes.shape != (ds.num_images, ds.num_captions):
        raise VlmkitError(f"{path}: shape {codes.shape}, expected {(ds.num_images, ds.num_captions)}: "
                          "delete it and run again")
    return codes
