"""The workbook in a real browser: JupyterLab from this environment on localhost, the system's
Chromium driven headless by selenium (Debian ``chromium`` + ``chromium-driver``; nothing is
downloaded).  Notebooks 03, 04 and 05 run on a small run directory (made by the library calls
01/02 would make, in seconds); then: no "Error displaying widget", the plotly figures rendered
(offline: ``.js-plotly-plot`` with an SVG), moving 04's λ slider and changing 05's query change
what is shown, the thumbnails appear, and ``report/report.html`` shows its images.
Screenshots go to the test's tmp_path (and ``$VLMKIT_SCREENSHOTS`` when set).

Skips with the reason when selenium, ``/usr/bin/chromium`` or ``/usr/bin/chromedriver`` is
missing (``bash scripts/setup.sh`` installs them where it can: root + apt).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
NOTEBOOKS = ("03_modality_gap", "04_mixed_retrievals", "05_uncertainty")
AUDIT = "10_audit"  # served too; run by its own test (the review widget and the offline review page)
RUN_TIMEOUT = 240  # seconds for the three notebooks to run (side by side) on 2 busy cores


def _requirements() -> str | None:
    import importlib.util

    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (pip install -e '.[test]')"
    for p, pkg in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not p.exists():
            return f"{p} is missing (Debian: apt-get install {pkg}; bash scripts/setup.sh does it as root)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _make_run(root: Path) -> Path:
    """A run directory as 01/02 leave it (data.json, a feature method and an uncertainty method)
    on 24 embedded test images, with features drawn near the truth (fast: no model)."""
    import pandas as pd
    import torch

    from vlmkit import viz
    from vlmkit import workbook as wb

    run = wb.prepare_run_dir(root / "run")
    wb.save_data_spec(run, "shapes", 24, 0, model="vlmkit-tiny", pretrained_dir="")
    ds = wb.run_dataset(run)
    g = torch.Generator().manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(ds.num_images, 16, generator=g), dim=1)
    pos = torch.as_tensor(ds.positives()).float()
    txt = torch.nn.functional.normalize(pos.T @ img + 0.3 * torch.randn(ds.num_captions, 16, generator=g), dim=1)
    wb.register_method(run, "pretrained", img=img, txt=txt, info={"score_kind": "cosine"})
    s = 10 * (img @ txt.T)
    wb.register_method(run, "vacsr", scores=s, uncertainty=torch.sigmoid(-s + torch.randn(s.shape, generator=g)), info={"score_kind": "logit"})
    seen = viz.image_grid_html(ds, range(8), title="test images")  # what 01 saves
    (run / "figures" / "01_test_images.html").write_text(f"<html><head><meta charset='utf-8'></head><body>{seen}</body></html>")
    gaps = pd.DataFrame({"method": ["pretrained"], "gap": [float((img.mean(0) - txt.mean(0)).norm())]})
    wb.show(viz.gap_bar_figure(gaps, title="gap (a figure exported as PNG, for the report)"), run, "02_test_figure")
    return run


def _notebook_copies(run: Path, folder: Path) -> None:
    """The notebooks with ``run_dir`` injected after their parameters cell (as papermill does),
    unpaired from their .py source (so JupyterLab's jupytext reads the .ipynb as written)."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    folder.mkdir()
    for name in (*NOTEBOOKS, AUDIT):
        nb = load_notebook_node(str(ROOT / "notebooks" / f"{name}.ipynb"))
        nb = parameterize_notebook(nb, {"run_dir": str(run)})
        nb.metadata.pop("jupytext", None)
        nb.metadata.pop("papermill", None)
        nbformat.write(nb, folder / f"{name}.ipynb")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """(base URL, token, run dir, tmp dir): JupyterLab serving copies of 03–05 that point at a small run."""
    reason = _requirements()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("browser")
    run = _make_run(tmp)
    _notebook_copies(run, tmp / "nb")
    settings = tmp / "lab-settings" / "@jupyterlab"
    for ext, name, value in (("apputils-extension", "notification", {"fetchNews": "false", "checkForUpdates": False}),
                             ("notebook-extension", "tracker", {"windowingMode": "none"})):  # render every cell, not only visible ones
        (settings / ext).mkdir(parents=True, exist_ok=True)
        (settings / ext / f"{name}.jupyterlab-settings").write_text(json.dumps(value))
    port, token = _free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if k not in ("VLMKIT_HEADLESS", "JUPYTER_PATH")}
    env.update({"JUPYTER_CONFIG_DIR": str(tmp / "jcfg"), "JUPYTER_RUNTIME_DIR": str(tmp / "jrt"), "IPYTHONDIR": str(tmp / "ipy"),
                "JUPYTERLAB_SETTINGS_DIR": str(tmp / "lab-settings"), "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "lab-ws"),
                "VLMKIT_NO_PROGRESS": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "VLMKIT_CACHE": str(tmp / "cache"),
                "VLMKIT_NO_PNG": "1"})  # kaleido starts a Chromium per PNG (seconds each): the kernels embed interactive figures
    log = open(tmp / "jupyterlab.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}",
                               "--ServerApp.ip=127.0.0.1", f"--ServerApp.token={token}", f"--ServerApp.root_dir={tmp / 'nb'}",
                               "--LabApp.expose_app_in_browser=True", "--ServerApp.port_retries=0"],
                              env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5).read()
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    pytest.fail(f"JupyterLab did not start: {(tmp / 'jupyterlab.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield base, token, run, tmp
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _headless_chromium():
    """Debian's chromium through its chromedriver, headless, one window size for every screenshot."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1100",
                "--no-first-run", "--disable-extensions"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    driver.set_script_timeout(60)
    return driver


@pytest.fixture(scope="module")
def browser(lab):
    driver = _headless_chromium()
    yield driver
    driver.quit()


FIND_JS = "const w = Array.from(window.jupyterapp.shell.widgets('main')).find(x => x.context && x.context.path === arguments[0]);"
STATE_JS = FIND_JS + """
if (!w || !w.content || !w.sessionContext || !w.content.widgets) return null;
const kernel = w.sessionContext.session && w.sessionContext.session.kernel;
let unexecuted = 0; const errors = [];
for (const c of w.content.widgets) {
  if (c.model.type !== 'code') continue;
  if (c.model.executionCount === null) unexecuted++;
  for (const o of c.model.outputs.toJSON()) if (o.output_type === 'error') errors.push(o.ename + ': ' + o.evalue);
}
return {kernel: kernel ? kernel.status : 'none', unexecuted: unexecuted, errors: errors,
        running: Array.from(w.node.querySelectorAll('.jp-InputPrompt')).some(p => p.textContent.includes('*'))};
"""


def _wait(driver, what: str, test, timeout: float, interval: float = 0.5):
    deadline = time.time() + timeout
    while True:
        got = test()
        if got:
            return got
        if time.time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def _shot(driver, tmp: Path, name: str) -> Path:
    path = tmp / f"{name}.png"
    driver.save_screenshot(str(path))
    if os.environ.get("VLMKIT_SCREENSHOTS"):
        out = Path(os.environ["VLMKIT_SCREENSHOTS"])
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, out / path.name)
    return path


def _command(driver, command: str, args: dict | None = None) -> None:
    """Execute a JupyterLab command and wait for its promise. Through an async script whose callback
    the promise's own handlers call, and with the promise kept on ``window``: a plain
    ``execute_script`` returning the promise lets Chromium collect it under load ("Promise was
    collected", a flaky failure seen in a fresh-clone CI run)."""
    driver.set_script_timeout(120)
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "const p = window.jupyterapp.commands.execute(arguments[0], arguments[1] || {});"
        "(window.__vlmkitPending = window.__vlmkitPending || []).push(p);"
        "p.then(() => done(true), (e) => done('error: ' + e));", command, args or {})
    assert result is True, f"JupyterLab command {command} {args or ''}: {result}"


def _run_notebooks(driver, base: str, token: str, names: tuple[str, ...]) -> None:
    """Open every notebook in JupyterLab (their kernels start side by side), run all cells of
    each (the "Run All Cells" command) as soon as its kernel is idle, wait until every cell ran."""
    driver.get(f"{base}/lab?token={token}")
    _wait(driver, "JupyterLab to start", lambda: driver.execute_script(
        "const a = window.jupyterapp; return !!(a && a.commands.hasCommand('docmanager:open') && a.commands.hasCommand('notebook:run-all-cells'))"), 90)
    for name in names:
        _command(driver, "docmanager:open", {"path": f"{name}.ipynb"})
    started, t0 = set(), time.time()
    while len(started) < len(names):
        for name in names:
            s = driver.execute_script(STATE_JS, f"{name}.ipynb")
            if name not in started and s and s["kernel"] == "idle":
                _activate(driver, name)
                _command(driver, "notebook:run-all-cells")
                started.add(name)
        assert time.time() - t0 < 120, f"kernels not idle after 120 s: {sorted(set(names) - started)}"
        time.sleep(0.5)

    last: dict = {}

    def finished():
        last.update({n: driver.execute_script(STATE_JS, f"{n}.ipynb") for n in names})
        done = all(s["kernel"] == "idle" and not s["running"] and (s["unexecuted"] == 0 or s["errors"]) for s in last.values())
        return done and dict(last)

    try:
        states = _wait(driver, "the notebooks to finish", finished, RUN_TIMEOUT, 1.0)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last states: {last}") from None
    assert not [s["errors"] for s in states.values() if s["errors"]], states


def _activate(driver, name: str) -> None:
    """Bring ``name``'s tab to the front (the notebook commands act on the current notebook)."""
    driver.execute_script(FIND_JS + "window.jupyterapp.shell.activateById(w.id);", f"{name}.ipynb")
    _wait(driver, f"{name} to be the current notebook", lambda: driver.execute_script(
        "const w = window.jupyterapp.shell.currentWidget; return !!w && !!w.context && w.context.path === arguments[0]", f"{name}.ipynb"), 20)
    time.sleep(1.0)  # let the tab's outputs lay out (plotly sizes itself when shown)


def _page_checks(driver, name: str) -> dict:
    driver.execute_script("""  // a figure output shown as its PNG becomes interactive on mouseenter (jupyterlab-plotly)
for (const el of window.jupyterapp.shell.currentWidget.node.querySelectorAll('.jp-RenderedPlotly'))
  if (!el.querySelector('.js-plotly-plot')) el.querySelector('img') && el.querySelector('img').dispatchEvent(new MouseEvent('mouseenter'));""")
    _wait(driver, f"{name}: every figure output to become an interactive plot", lambda: driver.execute_script("""
const outs = Array.from(window.jupyterapp.shell.currentWidget.node.querySelectorAll('.jp-RenderedPlotly'));
return outs.length > 0 && outs.every(el => el.querySelector('.js-plotly-plot svg.main-svg'));"""), 30)
    return driver.execute_script("""
const w = window.jupyterapp.shell.currentWidget.node;
const plots = Array.from(w.querySelectorAll('.js-plotly-plot'));
return {widget_errors: document.body.innerText.includes('Error displaying widget'),
        plots: plots.length, plots_with_svg: plots.filter(p => p.querySelector('svg.main-svg')).length,
        figure_outputs: w.querySelectorAll('.jp-RenderedPlotly').length,
        thumbs: Array.from(w.querySelectorAll('img.vlmkit-thumb')).filter(i => i.complete && i.naturalWidth > 0).length,
        imgs: Array.from(w.querySelectorAll('.jp-OutputArea img')).filter(i => i.complete && i.naturalWidth > 0).length,
        widgets: w.querySelectorAll('.jupyter-widgets').length};
""")


def _panel(driver, control_label: str) -> str:
    """innerHTML of the HTML panel(s) of the widget box that holds the control labelled ``control_label``."""
    return driver.execute_script("""
const label = arguments[0];
const w = window.jupyterapp.shell.currentWidget.node;
const lab = Array.from(w.querySelectorAll('.widget-label')).find(l => l.textContent.trim() === label);
if (!lab) return null;
let box = lab.closest('.widget-vbox') || lab.closest('.jp-OutputArea');
return Array.from(box.querySelectorAll('.widget-html-content, .widget-output')).map(e => e.innerHTML).join('\\n');
""", control_label)


def _readout(driver, control_label: str) -> str:
    return driver.execute_script("""
const lab = Array.from(window.jupyterapp.shell.currentWidget.node.querySelectorAll('.widget-label')).find(l => l.textContent.trim() === arguments[0]);
const r = lab && lab.closest('.widget-slider').querySelector('.widget-readout');
return r ? r.textContent.trim() : null;""", control_label)


def test_notebooks_03_to_05_and_the_report_in_chromium(lab, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    base, token, run, tmp = lab
    t0 = time.time()
    _run_notebooks(browser, base, token, NOTEBOOKS)
    print(f"03-05 ran in JupyterLab in {time.time() - t0:.0f} s")
    for name in NOTEBOOKS:
        _activate(browser, name)
        _shot(browser, tmp, f"{name}-run")
        checks = _page_checks(browser, name)
        print(name, checks)
        assert not checks["widget_errors"], f"{name}: 'Error displaying widget' on the page"
        assert checks["figure_outputs"] >= 1 and checks["plots_with_svg"] == checks["plots"] >= checks["figure_outputs"], \
            f"{name}: plotly figures not rendered: {checks}"
        assert checks["widgets"] >= 1, f"{name}: no widget rendered: {checks}"
        assert checks["thumbs"] >= 1, f"{name}: no image thumbnail (img.vlmkit-thumb) shown: {checks}"
    _activate(browser, "04_mixed_retrievals")
    before, value = _panel(browser, "λ"), _readout(browser, "λ")
    assert before and "vlmkit-thumb" in before, "04: no panel of thumbnails beside the λ slider"
    handle = browser.find_element(By.XPATH, "//div[contains(@class,'widget-slider')][.//label[normalize-space()='λ']]//div[contains(@class,'noUi-handle')]")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", handle)
    handle.send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)  # the keyboard moves the slider two steps
    _wait(browser, "04's panel to change after moving the λ slider", lambda: _panel(browser, "λ") not in (before, None), 30)
    assert float(_readout(browser, "λ")) > float(value), "04: the λ slider did not move"
    _shot(browser, tmp, "04_after_slider")
    _activate(browser, "05_uncertainty")
    before = _panel(browser, "query")
    assert before and "vlmkit-thumb" in before, "05: no panel of thumbnails beside the query box"
    box = browser.find_element(By.XPATH, "//div[contains(@class,'widget-text')][.//label[normalize-space()='query']]//input")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", box)
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys("3", Keys.ENTER)
    _wait(browser, "05's panel to change after a new query", lambda: _panel(browser, "query") not in (before, None), 30)
    _shot(browser, tmp, "05_after_query")
    print(f"notebooks in the browser: {time.time() - t0:.0f} s")

    # the report of this run (the figures 03-05 just saved, their image panels, 01's grid), opened from disk
    from vlmkit.report import build_report

    page = build_report(run)
    browser.get(page.resolve().as_uri())
    shown = browser.execute_script("""
const ok = i => i.complete && i.naturalWidth > 0;
return {figs: Array.from(document.querySelectorAll('img.fig')).filter(ok).length,
        all_figs: document.querySelectorAll('img.fig').length,
        thumbs: Array.from(document.querySelectorAll('img.vlmkit-thumb')).filter(ok).length,
        external: Array.from(document.querySelectorAll('[src],[href]')).map(e => e.getAttribute('src') || e.getAttribute('href'))
                       .filter(u => /^\\s*(https?:)?\\/\\//i.test(u))};""")
    _shot(browser, tmp, "report")
    browser.execute_script("document.querySelector('img.fig').scrollIntoView({block: 'start'});")
    _shot(browser, tmp, "report-figure")
    assert shown["external"] == [], shown
    assert shown["thumbs"] >= 8 + 3, shown  # 01's grid of test images and the panels of 03-05
    pngs = sorted(p.stem for p in (run / "figures").glob("*.png"))
    assert shown["figs"] == shown["all_figs"] == len(pngs) >= 1, (shown, pngs)  # every PNG the run saved, decoded and shown


@pytest.fixture(scope="module")
def chromium():
    """Headless Chromium alone (no JupyterLab): for pages opened from disk."""
    reason = _requirements()
    if reason:
        pytest.skip(reason)
    driver = _headless_chromium()
    yield driver
    driver.quit()


PLOT_JS = "return Array.from(document.querySelectorAll('.js-plotly-plot')).filter(p => p.querySelector('svg.main-svg')).length;"


def test_grid_comparison_page_in_chromium(chromium, tmp_path):
    """The page ``vlmkit run --grid`` ends with (vlmkit.batch), from fake runs of a 2 seeds × 2
    noise ratios grid with one failed point: with PNGs, every image decodes and each figure's
    interactive HTML renders in plotly (offline); without PNGs, each framed figure renders."""
    import pandas as pd

    from vlmkit import batch
    from vlmkit import workbook as wb
    from vlmkit.viz import png_available

    runs = []
    for seed in (0, 1):
        for noise in (0, 0.5):
            run = wb.prepare_run_dir(tmp_path / "runs" / f"s{seed}-n{noise}")
            point = {"seed": seed, "noise_ratio": noise}
            ok = (seed, noise) != (1, 0.5)
            if ok:
                wb.write_table(run, "summary", pd.DataFrame({"method": ["contrastive", "m2mix"], "R@1 i2t [full 10x50]": [10 + seed - 4 * noise, 12 + 2 * seed],
                                                             "gap ‖Δ‖": [0.8 + 0.01 * seed, 0.7 - 0.1 * noise]}))
            (run / "run.json").write_text(json.dumps({"parameters": point, "grid_point": point, "status": "ok" if ok else "failed"}))
            runs.append(run)
    b = batch.from_runs(runs)
    names = list(b.figures())
    assert len(names) == 2
    for folder, png in ((tmp_path / "with-png", True), (tmp_path / "html-only", False)):
        page = b.write(folder, png=png)
        chromium.get(page.resolve().as_uri())
        shown = chromium.execute_script("""
const ok = i => i.complete && i.naturalWidth > 0;
return {figs: Array.from(document.querySelectorAll('img.fig')).filter(ok).length, all_figs: document.querySelectorAll('img.fig').length,
        frames: document.querySelectorAll('iframe.plotly').length,
        external: Array.from(document.querySelectorAll('[src],[href]')).map(e => e.getAttribute('src') || e.getAttribute('href'))
                       .filter(u => /^\\s*(https?:)?\\/\\//i.test(u))};""")
        _shot(chromium, tmp_path, f"grid-page-{folder.name}")
        assert shown["external"] == [], shown
        if png and png_available():
            assert shown["figs"] == shown["all_figs"] == len(names) and shown["frames"] == 0, shown
            for name in names:  # each interactive figure beside the page renders
                chromium.get((folder / "figures" / f"{name}.html").resolve().as_uri())
                _wait(chromium, f"{name}.html to render", lambda: chromium.execute_script(PLOT_JS) == 1, 30)
        elif not png:
            assert shown["frames"] == len(names) and shown["all_figs"] == 0, shown
            for k in range(len(names)):
                chromium.switch_to.frame(chromium.find_elements("css selector", "iframe.plotly")[k])
                _wait(chromium, f"framed figure {k} to render", lambda: chromium.execute_script(PLOT_JS) == 1, 30)
                bands = chromium.execute_script("return document.querySelector('.js-plotly-plot').data.filter(t => t.meta === 'band').length;")
                assert bands >= 2, bands  # one band per method at least
                chromium.switch_to.default_content()


def test_audit_review_widget_and_page_in_chromium(lab, browser):
    """10_audit in JupyterLab: the review widget renders with thumbnails, a click on "true" saves the
    extended-positives JSON at once; then its offline review.html: every thumbnail decodes, nothing
    external, and a verdict radio is what the download would hold."""
    from selenium.webdriver.common.by import By

    base, token, run, tmp = lab
    _run_notebooks(browser, base, token, (AUDIT,))
    _activate(browser, AUDIT)
    checks = browser.execute_script("""
const w = window.jupyterapp.shell.currentWidget.node;
return {widget_errors: document.body.innerText.includes('Error displaying widget'),
        thumbs: Array.from(w.querySelectorAll('img.vlmkit-thumb')).filter(i => i.complete && i.naturalWidth > 0).length,
        all_thumbs: w.querySelectorAll('img.vlmkit-thumb').length,
        toggles: w.querySelectorAll('.widget-toggle-buttons').length};""")
    _shot(browser, tmp, "10_audit")
    print(AUDIT, checks)
    assert not checks["widget_errors"] and checks["toggles"] >= 2, checks
    assert checks["thumbs"] == checks["all_thumbs"] >= 8, checks
    button = browser.find_element(By.XPATH, "(//div[contains(@class,'widget-toggle-buttons')])[1]//button[normalize-space()='true']")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", button)
    button.click()
    saved = run / "audit" / "extended_positives.json"
    _wait(browser, "the widget to save the verdict", lambda: saved.is_file() and json.loads(saved.read_text()), 30)
    _shot(browser, tmp, "10_audit_marked")

    browser.get((run / "audit" / "review.html").resolve().as_uri())
    page = browser.execute_script("""
const ok = i => i.complete && i.naturalWidth > 0;
return {thumbs: Array.from(document.querySelectorAll('img.vlmkit-thumb')).filter(ok).length,
        all: document.querySelectorAll('img.vlmkit-thumb').length, rows: document.querySelectorAll('tr.vlmkit-cand').length,
        external: Array.from(document.querySelectorAll('[src],[href]')).map(e => e.getAttribute('src') || e.getAttribute('href'))
                       .filter(u => /^\\s*(https?:)?\\/\\//i.test(u))};""")
    _shot(browser, tmp, "review_page")
    assert page["thumbs"] == page["all"] >= page["rows"] >= 2 and page["external"] == [], page
    browser.find_element(By.CSS_SELECTOR, "tr.vlmkit-cand input[value='false']").click()
    got = browser.execute_script("return vlmkitDecisions();")
    assert len(got) == 1 and got[0]["verdict"] == "false" and "vlmkit-count" in browser.page_source
