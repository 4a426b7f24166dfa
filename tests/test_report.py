"""The report as a document (``vlmkit.report``) on hand-made run directories: every section,
figures embedded as data URIs (decoded back to the pixels written), no external reference,
numbers under the one precision rule, a protocol line per table, warnings / skips / claims,
the grid comparison page, and ``vlmkit run --grid`` ending with it."""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from vlmkit import report
from vlmkit import workbook as wb
from vlmkit.report_text import NARRATIVE, SECTIONS
from vlmkit.utils import VlmkitError

COLOURS = {"03_gap_per_method": (200, 30, 30), "07_reliability_pretrained_i2t": (20, 120, 220)}


class _Refs(HTMLParser):
    """Every src / href attribute and every <img> of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.imgs: list[dict] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        a = dict(attrs)
        self.refs += [v for k, v in attrs if k in ("src", "href") and v]
        if tag == "img":
            self.imgs.append(a)


def _parse(text: str) -> _Refs:
    p = _Refs()
    p.feed(text)
    return p


def _fake_run(root: Path, name: str = "run", *, point: dict | None = None, summary: bool = True) -> Path:
    """A run directory as vlmkit run leaves it, written by hand: tables through write_table, two
    PNG figures and one HTML-only figure in figures/_export.json, an image panel, run.json."""
    run = wb.prepare_run_dir(root / name)
    wb.write_table(run, "gap", pd.DataFrame({"method": ["pretrained", "m2mix"], "gap": [1.0486600641, 0.0004567]}),
                   protocol="centroid distance of unit test embeddings, tiny")
    wb.write_table(run, "uncertainty", pd.DataFrame({"method": ["vacsr", "vacsr"], "direction": ["i2t", "t2i"],
                                                    "pearson": [-0.93123, 0.5], "fn_auroc": [0.95777, np.nan],
                                                    "n_queries": [1000.0, np.nan]}),
                   protocol="uncertainty–R@1 Pearson r over 10 bins, correct = one-to-one labels")
    wb.write_table(run, "calibration", pd.DataFrame({"method": ["pretrained"], "direction": ["i2t"], "ece_labels": [12.0612], "ece_truth": [9.2549]}),
                   protocol="ECE (%) of top-1 retrieval, 15 bins")
    wb.write_table(run, "noise_census", pd.DataFrame({"n_captions": [600], "moved": [120], "mismatched": [103]}),
                   protocol="training split shapes-train, noise_ratio 0.2")
    if summary:
        wb.write_table(run, "summary", pd.DataFrame({"method": ["pretrained", "m2mix"], "R@1 i2t [full 10x50]": [9.254, 12.06],
                                                     "gap ‖Δ‖": [1.0486600641, 0.9], "unc–R@1 r [one-to-one labels]": [np.nan, -0.87654]}))
    ret = pd.DataFrame({"method": ["pretrained"] * 3, "protocol": ["full 10x50"] * 3, "direction": ["i2t", "i2t", "both"],
                        "metric": ["R@1", "mAP@R", "RSUM"], "value": [9.254, 33.3333, 401.0], "unit": ["%"] * 3})
    wb.write_table(run, "retrieval", ret)
    for name, colour in COLOURS.items():
        Image.new("RGB", (90, 60), colour).save(run / "figures" / f"{name}.png")
        (run / "figures" / f"{name}.html").write_text("<html><script src='plotly.min.js'></script></html>")
    (run / "figures" / "05_fig3_vacsr_i2t.html").write_text("<html><script src='plotly.min.js'></script></html>")
    figs = {n: {"png": True, "interactive_inline": True} for n in COLOURS} | {"05_fig3_vacsr_i2t": {"png": False, "interactive_inline": True}}
    (run / "figures" / "_export.json").write_text(json.dumps({"static_figures": False, "note": "some figures have no static PNG", "figures": figs}))
    thumb = "data:image/png;base64," + base64.b64encode(_png_bytes((1, 2, 3))).decode()
    (run / "figures" / "01_test_images.html").write_text(f"<html><head></head><body><div id=grid><img src='{thumb}'> image 0</div></body></html>")
    meta = {"parameters": {"seed": 0, "noise_ratio": 0.2, "methods": ["contrastive", "m2mix"], **(point or {})}, "grid_point": point or {},
            "status": "ok", "git_commit": "abc123", "vlmkit_version": "0.1.0",
            "notebooks": {"02_finetune.ipynb": {"status": "ok", "seconds": 12.5,
                                                "warnings": [{"category": "UserWarning", "message": "feature cache rejected: stale", "count": 2, "where": "features.py:90"}],
                                                "skipped": [{"dataset": "csv-x", "role": "train", "count": 3, "items": [{"where": "x.csv row 7", "reason": "image missing"}]}]}}}
    (run / "run.json").write_text(json.dumps(meta))
    return run


def _png_bytes(colour) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), colour).save(buf, format="PNG")
    return buf.getvalue()


def test_format_rule():
    f = report.format_value
    assert (f(9.254, "pct"), f(12.0, "pct"), f(-0.93123, "real"), f(0.95777), f(1000, "real"), f(3.0, "int")) == \
        ("9.25", "12.00", "-0.931", "0.958", "1000", "3")
    assert f(6.205e-08) == "6.21e-08" and f(0.0) == "0.000" and f(float("nan"), "pct") == "—" and f(None) == "—" and f(True) == "True"
    kinds = {s: report.value_kind(s) for s in ("R@1 i2t [full 10x50]", "RSUM both", "mAP@R", "ECE % i2t", "ece_labels", "r1_i2t",
                                               "unc–R@1 r [one-to-one labels]", "pearson", "fn_auroc", "FN-vs-TN AUROC of σ²", "gap ‖Δ‖")}
    assert [k for k, v in kinds.items() if v == "pct"] == ["R@1 i2t [full 10x50]", "RSUM both", "mAP@R", "ECE % i2t", "ece_labels", "r1_i2t"]


def test_report_has_every_section_embedded_figures_and_no_external_reference(tmp_path):
    run = _fake_run(tmp_path)
    path = report.build_report(run)
    assert path == run / "report" / "report.html" and [p.name for p in (run / "report").iterdir()] == ["report.html"]  # atomic: no temp left
    text = path.read_text()
    for key, title, _, _ in SECTIONS:
        assert f"<section id={key}><h2>{title}</h2>" in text, key
        assert NARRATIVE[key][:60] in text.replace("&#x27;", "'"), key
    for key in ("parameters", "warnings", "skipped", "claims"):
        assert f"<section id={key}>" in text, key
    parsed = _parse(text)
    assert not [r for r in parsed.refs if re.match(r"\s*(https?:)?//", r, re.I)], "external reference"
    assert not parsed.tags & {"script", "link", "iframe"}
    figs = [i for i in parsed.imgs if i.get("class") == "fig"]
    assert sorted(i["alt"] for i in figs) == sorted(COLOURS)
    for img in figs:  # the pixels written are the pixels shown
        head, data = img["src"].split(",", 1)
        assert head == "data:image/png;base64"
        px = Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")
        assert px.size == (90, 60) and px.getpixel((45, 30)) == COLOURS[img["alt"]]
    assert [i["src"] for i in parsed.imgs if i.get("class") != "fig"] == [f"data:image/png;base64,{base64.b64encode(_png_bytes((1, 2, 3))).decode()}"]
    assert "Figure 05_fig3_vacsr_i2t: no static image" in text and "some figures have no static PNG" in text
    # the sections own their figures: the gap figure in the gap section, the panel in the data section
    sec = {m.group(1): m.group(2) for m in re.finditer(r"<section id=(\w+)>(.*?)</section>", text, re.S)}
    assert "alt='03_gap_per_method'" in sec["gap"] and "id=grid" in sec["data"] and "05_fig3_vacsr_i2t" in sec["uncertainty"]
    assert "<h3>Summary per method <small>(tables/summary.csv)</small></h3>" in sec["retrieval"] and "Modality gap per method" in sec["gap"]
    assert "Noisy training split: moved vs truly mismatched captions" in sec["data"] and "truly mismatched" in sec["data"]


def test_report_numbers_follow_the_rule_and_every_table_states_its_protocol(tmp_path):
    text = report.build_report(_fake_run(tmp_path)).read_text()
    assert report.PRECISION_RULE.split(";")[0] in text  # the rule is in the header
    cells = re.findall(r"<td class=num>([^<]*)</td>", text)
    # percentages: 2 decimals (R@1, ECE, and the value column of the long retrieval table by its metric)
    assert {"9.25", "12.06", "9.25", "33.33", "401.00"} <= set(cells)
    # correlations / AUROC / gaps: 3 decimals; below 0.001 scientific; counts as integers
    assert {"-0.931", "0.958", "1.049", "-0.877", "4.57e-04", "1000"} <= set(cells)
    assert not [c for c in cells if re.fullmatch(r"-?\d+\.\d{4,}", c)], "a number with more decimals than the rule allows"
    for proto in ("centroid distance of unit test embeddings, tiny", "uncertainty–R@1 Pearson r over 10 bins, correct = one-to-one labels",
                  "ECE (%) of top-1 retrieval, 15 bins", "in each metric&#x27;s name"):
        assert f"<b>Protocol:</b> {proto}" in text, proto
    tables = text.count("<table>")
    assert tables == text.count("<b>Protocol:</b>"), "a table without its protocol line"


def test_report_shows_parameters_warnings_skips_and_the_claims_ledger(tmp_path):
    run = _fake_run(tmp_path)
    text = report.build_report(run, claims_md=tmp_path / "absent.md").read_text()
    assert "feature cache rejected: stale" in text and "x.csv row 7: image missing" in text
    assert "<td>noise_ratio</td><td>0.2</td>" in text and "<td>methods</td><td>contrastive, m2mix</td>" in text and "abc123" in text
    assert "Claims ledger: not run yet" in text
    md = tmp_path / "results.md"
    md.write_text("# Results\n\n| claim | verdict | evidence |\n|---|:---:|---|\n| VACSR σ² tracks R@1 | **refuted** | `bench/x.json` |\n"
                  "| m²-Mix narrows the gap | supported | [bench](bench/README.md) |\n| a \\| b | x | y |\n\nprose\n"
                  "\n> **Out of date:** measured on `vacsr-hetero` & co\n")
    text = report.build_report(run, claims_md=md).read_text()
    assert "<td>VACSR σ² tracks R@1</td><td><b>refuted</b></td><td><code>bench/x.json</code></td>" in text
    assert "<td>m²-Mix narrows the gap</td><td>supported</td><td>bench</td>" in text and "<td>a | b</td><td>x</td>" in text and "---" not in text.split("id=claims")[1]
    assert "<p class=protocol><b>Out of date:</b> measured on <code>vacsr-hetero</code> &amp; co</p>" in text  # the ledger's caveat travels with it
    assert report.claims_html(tmp_path / "absent.md").startswith("<p>Claims ledger: not run yet")
    # by default the checkout's own docs/results.md, the committed ledger: every claim row with its verdict
    from vlmkit.claims import VERDICTS

    default = report.default_claims_md()
    if default is not None:
        shown = report.claims_html(default)
        rows = re.findall(r"<tr><td>(\d+[ab]?)</td>.*?<td><b>([a-z ]+)</b></td></tr>", shown)
        expected = ["1", "2", "3a", "3b", "4a", "4b"] + [str(n) for n in range(5, 15)]
        assert [n for n, _ in rows] == expected and {v for _, v in rows} <= set(VERDICTS)


def test_report_of_a_partial_run_and_bad_input(tmp_path):
    run = wb.prepare_run_dir(tmp_path / "empty")
    text = report.build_report(run).read_text()
    assert text.count("Nothing for this section in this run") == len(SECTIONS) and "the parameters of this run were not recorded" in text
    with pytest.raises(VlmkitError, match="does not exist"):
        report.build_report(tmp_path / "nope")
    (run / "run.json").write_text("{broken")
    with pytest.raises(VlmkitError, match="run.json: not valid JSON"):
        report.build_report(run)


def test_grid_page_lists_each_point_and_the_parameters_that_differ(tmp_path):
    runs = [_fake_run(tmp_path, f"p{i}", point={"noise_ratio": nr}) for i, nr in enumerate((0.0, 0.5))]
    runs.append(_fake_run(tmp_path, "p2", point={"noise_ratio": 0.8}, summary=False))
    meta = json.loads((runs[2] / "run.json").read_text()) | {"status": "failed"}
    (runs[2] / "run.json").write_text(json.dumps(meta))
    page = report.build_grid_report(runs, tmp_path / "batch")
    assert page == tmp_path / "batch" / "report.html"
    text = page.read_text()
    points = text.split("<section id=points>")[1].split("</section>")[0]
    assert "<th>noise_ratio</th>" in points and "<th>seed</th>" not in points and "seed = 0" in points
    for r, nr in zip(runs, ("0.0", "0.5", "0.8")):
        assert f"<td>{r.name}</td>" in points and f"<h3>{r.name} (noise_ratio = {nr})</h3>" in text
    assert text.count("<td>R@1 i2t [full 10x50]</td>") == 2 and "No summary: this run did not reach 08 (status failed)" in text
    assert not [r for r in _parse(text).refs if re.match(r"\s*(https?:)?//", r, re.I)]
    with pytest.raises(VlmkitError, match="no run directories"):
        report.build_grid_report([], tmp_path / "x.html")


def test_vlmkit_run_grid_ends_with_the_comparison_page(tmp_path, monkeypatch):
    from vlmkit import cli

    def fake_chain(run_dir, params, point, only):  # what a finished chain leaves: run.json and a summary
        _fake_run(run_dir.parent, run_dir.name, point=point)
        return True

    monkeypatch.setattr(cli, "run_chain", fake_chain)
    monkeypatch.setenv("VLMKIT_NO_PNG", "1")  # the batch figures' PNGs: tests/test_batch.py
    assert cli.main(["run", "--out", str(tmp_path), "--grid", "noise_ratio=0,0.5", "--only", "08"]) == 0
    (batch,) = tmp_path.glob("batch-*")
    assert sorted(p.name for p in batch.iterdir()) == ["figures", "report.html", "summary.csv", "summary_by_seed.csv"]  # vlmkit.batch: tests/test_batch.py
    text = (batch / "report.html").read_text()
    assert "2 grid points" in text and "(noise_ratio = 0.0)" in text and "(noise_ratio = 0.5)" in text


def test_write_result_tables_matches_a_brute_force_r_at_1(tmp_path):
    import torch

    run = wb.prepare_run_dir(tmp_path / "run")
    wb.save_data_spec(run, "shapes", 12, 0, model="vlmkit-tiny", pretrained_dir="")
    ds = wb.run_dataset(run)
    g = torch.Generator().manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(ds.num_images, 8, generator=g), dim=1)
    txt = torch.nn.functional.normalize(img[torch.as_tensor(ds.caption_image)] + 0.8 * torch.randn(ds.num_captions, 8, generator=g), dim=1)
    wb.register_method(run, "pretrained", img=img, txt=txt)
    wide, summary = report.write_result_tables(run)
    s = (img @ txt.T).numpy()
    ci = np.asarray(ds.caption_image)
    hit = [ci[np.argmax(s[i])] == i for i in range(ds.num_images)]
    r1 = wide[(wide.direction == "i2t") & (wide.metric == "R@1") & wide.protocol.str.startswith("full")].pretrained
    assert r1.item() == pytest.approx(100 * np.mean(hit))
    assert (run / "tables" / "retrieval.csv").is_file() and list(summary.method) == ["pretrained"]
    assert summary.filter(like="R@1 i2t").iloc[0, 0] == pytest.approx(100 * np.mean(hit))


def test_status_phrase_while_the_run_still_runs():
    from vlmkit.report import _status_phrase

    meta = {"status": "running", "notebooks": {"00_primer.ipynb": {"status": "ok"}, "01_x.ipynb": {"status": "ok"},
                                               "02_y.ipynb": {"status": "failed"}}}
    assert _status_phrase(meta) == "written by the run itself, after 2 notebook(s) had finished"
    assert _status_phrase({"status": "running"}) == "written during the run"
    assert _status_phrase({"status": "ok"}) == "status ok"
