"""Reviewing audit candidates with the images (issue #23).

- :func:`review_page_html` — one self-contained HTML page (thumbnails as JPEG data URIs, no
  external file or script): per task a table of candidates, each with the image, the caption,
  the image the caption was written for, every scorer's value, and true / false / unsure
  buttons; "Download decisions.json" saves the verdicts in the format
  :func:`vlmkit.audit.read_decisions` reads (then ``vlmkit audit DATA --decisions FILE`` or
  :func:`vlmkit.audit.write_decisions` turns them into an extended-positives JSON).
- the JupyterLab widget that shows the same candidates a page at a time and writes each verdict at
  once is :class:`vlmkit.audit.widget.ReviewWidget` (it writes decisions, so it lives beside them).

The tables are those of :class:`vlmkit.audit.AuditResult` (columns ``task``, ``rank``, ``image``,
``image_id``, ``caption``, ``caption_text``, ``caption_image``, evidence columns, ``combined``).
"""

from __future__ import annotations

import html
import json
from typing import Any, Sequence

import pandas as pd

from ..utils import VlmkitError
from .gallery import Thumbs, _esc, _num

TITLES = {"false_negative": "Likely false negatives: unlabelled pairs most likely true",
          "mismatch": "Likely mismatched pairs: labelled pairs most likely false"}
VERDICT_COLOURS = {"true": "#2e7d32", "false": "#c62828", "unsure": "#ef6c00"}
_CSS = """body{font-family:sans-serif;margin:16px;color:#222}\
table.vlmkit-review{border-collapse:collapse;margin-bottom:24px}
.vlmkit-review td,.vlmkit-review th{border-bottom:1px solid #ddd;padding:4px 6px;vertical-align:top;font-size:12px;\
text-align:left}
.vlmkit-review .cap{max-width:320px;font-size:13px}.vlmkit-review .ev td{border:none;padding:0 4px;font-size:11px}
.vlmkit-review label{display:block;white-space:nowrap}.note{color:#555;font-size:12px;max-width:900px}"""
_SCRIPT = """<script>
function vlmkitDecisions(){
  const out=[];
  document.querySelectorAll('tr.vlmkit-cand').forEach(r=>{
    const c=r.querySelector('input[type=radio]:checked');
    if(c){out.push({task:r.dataset.task,image:+r.dataset.image,image_id:r.dataset.imageId,caption:+r.dataset.caption,\
verdict:c.value});}
  });
  return out;
}
function vlmkitCount(){document.getElementById('vlmkit-count').textContent=vlmkitDecisions().length+' verdicts';}
function vlmkitDownload(){
  const meta=JSON.parse(document.getElementById('vlmkit-meta').textContent);
  const blob=new Blob([JSON.stringify({...meta,decisions:vlmkitDecisions()},null,1)],{type:'application/json'});
  const a=document.createElement('a');a.href=URL.createObjectURL(blob);a.download='decisions.json';
  document.body.appendChild(a);a.click();a.remove();
}
document.addEventListener('change',vlmkitCount);
</script>"""


def _evidence(row: Any, columns: Sequence[str]) -> str:
    cells = "".join(f"<tr><td>{html.escape(c)}</td><td>{_num(row[c])}</td></tr>" for c in columns if c in row.index)
    return f"<table class='ev'>{cells}</table>"


def candidate_row_html(ds: Any, thumbs: Thumbs, row: Any, columns: Sequence[str], *, radios: bool = True) -> str:
    """One candidate as a table row: rank, image, caption, the caption's own image, evidence, verdict."""
    i, j, own = int(row["image"]), int(row["caption"]), int(row["caption_image"])
    name = f"v-{row['task']}-{i}-{j}"
    verdict = ""
    if radios:
        verdict = "".join(f"<label style='color:{VERDICT_COLOURS[v]}'>"
                          f"<input type='radio' name='{name}' value='{v}'> {v}</label>"
                          for v in ("true", "false", "unsure"))
    written = ("the same image (its labelled pair)" if own == i else
               f"{thumbs(own)}<div>image {own} · {_esc(ds.image_ids[own], 40)}</div>")
    return (f"<tr class='vlmkit-cand' data-task='{html.escape(str(row['task']))}' data-image='{i}' data-caption='{j}' "
            f"data-image-id='{html.escape(str(ds.image_ids[i]))}'>"
            f"<td>{int(row['rank'])}</td><td>{thumbs(i)}<div>image {i} · {_esc(ds.image_ids[i], 40)}</div></td>"
            f"<td class='cap'>“{_esc(ds.captions[j], 300)}”<div style='color:#777'>caption {j}</div></td>"
            f"<td>{written}</td><td>{_evidence(row, columns)}</td><td>{verdict}</td></tr>")


def task_table_html(ds: Any, thumbs: Thumbs, task: str, table: pd.DataFrame, columns: Sequence[str], *,
                    radios: bool = True) -> str:
    head = ("<tr><th>#</th><th>image</th><th>caption</th><th>the caption was written for</th><th>evidence</th>"
            f"<th>{'verdict: is the caption true of the image?' if radios else ''}</th></tr>")
    rows = "".join(candidate_row_html(ds, thumbs, r, columns, radios=radios) for _, r in table.iterrows())
    return (f"<h3>{html.escape(TITLES.get(task, task))} ({len(table)} shown)</h3>"
            f"<table class='vlmkit-review' data-task='{html.escape(task)}'>{head}{rows}</table>")


def review_page_html(ds: Any, tables: dict[str, pd.DataFrame], columns: Sequence[str], *, info: dict | None = None,
                     size: int = 96, title: str = "") -> str:
    """The offline review page (module docstring) as one HTML document."""
    if not tables:
        raise VlmkitError("review_page_html: no candidate table to show")
    thumbs = Thumbs(ds, size)
    info = info or {}
    meta = json.dumps({"format": "vlmkit-audit-decisions/1", "dataset": ds.name, "fingerprint": ds.fingerprint()})
    body = "".join(task_table_html(ds, thumbs, t, d, columns) for t, d in tables.items())
    note = (f"<p class='note'>{html.escape(str(info.get('protocol', '')))}.<br>Rank rule: "
            f"{html.escape(str(info.get('rule', '')))}.<br>"
            "Mark each pair: <b>true</b> = the caption is true of the image. Then “Download decisions.json” and run "
            "<code>vlmkit audit DATA --decisions decisions.json --out DIR</code> to write the extended-positives "
            "JSON.</p>")
    return ("<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(title or 'vlmkit audit: ' + ds.name)}</title>"
            f"<style>{_CSS}</style></head><body><h2>{html.escape(title or 'Audit of ' + ds.name)}</h2>{note}"
            f"<script type='application/json' id='vlmkit-meta'>{html.escape(meta, quote=False)}</script>"
            "<p><button id='vlmkit-download' onclick='vlmkitDownload()'>Download decisions.json</button> "
            f"<span id='vlmkit-count'>0 verdicts</span></p>{body}{_SCRIPT}</body></html>")
