# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 10 · Audit your own data
#
# Which pairs of *your* data are wrong? Two ranked lists: **likely false negatives** (captions
# written for another image but true of this one) and **likely mismatched pairs** (a caption
# attached to the wrong image). Several scorers vote — the zero-shot cosine, every method the run
# registered (fine-tuned cosine, VACSR's score and σ²), the per-pair loss, and consistency with the
# image's other captions and the caption's own image — and a combined rank (the mean of their
# percentile ranks; the rule is `vlmkit.audit.RULE`) orders the candidates. Review them with the
# images (the widget below, or `audit/review.html` offline); verdicts become an extended-positives
# JSON that the next evaluation credits (`ds.with_extended_positives(path)`).
#
# Runs alone too: without a run's data (`01`) it loads `audit_dataset` (or the embedded data)
# and encodes it with `model` / `pretrained`. Same as `vlmkit audit DATA --out RUN/audit`.

# %% tags=["parameters"]
run_dir: str = "runs/interactive"  # the run directory every notebook reads and writes
audit_dataset: str = ""  # empty: the run's data (data.json, with its methods as scorers), else the embedded data; or a load_dataset spec
test_images: int = 1000  # embedded data only: test images (5 captions each)
seed: int = 0  # embedded data seed, and the seed of an audit VACSR adapter
audit_noise: float = 0.0  # embedded data only: permute this share of captions so there are known mismatches (not the run's data then)
model: str = ""  # open_clip architecture of `pretrained` (empty: the stand-in's own config)
pretrained: str = "stand-in"  # zero-shot model when the run has no `pretrained` method: stand-in, an open_clip tag, a weights file or dir
cache_dir: str = ""  # checkpoint and feature cache; empty: $VLMKIT_CACHE or ~/.cache/vlmkit
device: str = "auto"  # auto (GPU when present), cpu or cuda
audit_top_k: int = 10  # false-negative candidates per image and per caption, per scorer
audit_review: int = 30  # candidates per task on the review page and in the widget
audit_combine: str = ""  # comma-separated evidence columns of the combined rank (empty: every score, σ² and consistency column)
audit_vacsr_epochs: int = 0  # >0: train a VACSR adapter on the zero-shot features for the audit (the run's vacsr method is used either way)

# %%
from IPython.display import display

from vlmkit import audit
from vlmkit import viz
from vlmkit import workbook as wb
from vlmkit.audit.cli import build_scorers, load_data, parse_combine
from vlmkit.viz.gallery import Thumbs
from vlmkit.audit.widget import review_widget
from vlmkit.viz.review import task_table_html

run = wb.prepare_run_dir(run_dir)
HEADLESS = wb.headless()  # papermill / vlmkit run: no widgets (the review page is written either way)
out = run / "audit"
use_run = not audit_dataset and (run / "data.json").is_file() and audit_noise == 0
ds = load_data(audit_dataset or None, str(run) if use_run else None, test_images, seed, audit_noise)
scorers = build_scorers(ds, model=model, pretrained=pretrained, run_dir=str(run) if use_run and wb.list_methods(run) else None,
                        vacsr_epochs=audit_vacsr_epochs, seed=seed, device=device, cache_dir=cache_dir or None)
print(ds, "| scorers:", ", ".join(s.name + (" (score, σ²)" if s.has_uncertainty else "") for s in scorers),
      "| from the run's methods" if use_run else "| data loaded here")

# %%
res = audit.audit_scores(ds, scorers, top_k=audit_top_k, combine=parse_combine(audit_combine))
paths = audit.write_outputs(ds, res, out, n_review=audit_review)
for task, table in res.tables.items():
    wb.write_table(run, f"audit_{task}", table.head(audit_review).drop(columns=[c for c in table if c.startswith("pct:")]),
                   protocol=res.info["protocol"] + "; " + audit.RULE)
print(f"{res.info['candidates']} candidates in {res.info['seconds']} s; combined columns: {res.combine}")
print("wrote", ", ".join(str(p) for p in paths.values()))

# %% [markdown]
# ## The candidates, seen
# The top of each list with the image, the caption, the image the caption was written for, and
# every scorer's value (also saved as `figures/10_audit_<task>.html`; the full page with verdict
# buttons is `audit/review.html`).

# %%
cols = audit.review_columns(res)
for task, table in res.tables.items():
    thumbs = Thumbs(ds, 72)
    viz.show_html(f"<div class='vlmkit-gallery'>{task_table_html(ds, thumbs, task, table.head(8), cols, radios=False)}</div>",
                  run, f"10_audit_{task}")

# %% [markdown]
# ## Review (JupyterLab)
# Mark each candidate true / false / unsure; every click saves `audit/decisions.json` and
# `audit/extended_positives.json` at once.

# %%
reviewer = review_widget(ds, {t: d.head(audit_review) for t, d in res.tables.items()}, out, cols)
if HEADLESS:
    print(f"headless: review in JupyterLab (this cell shows the widget) or open {paths['review']} in a browser "
          f"and run `vlmkit audit ... --decisions decisions.json --out {out}`")
else:
    display(reviewer.widget)

# %% [markdown]
# ## How good is the audit? (only where the truth is known)
# On the embedded data the generator knows every pair, so each scorer's precision / recall / AUROC
# can be measured (`vlmkit.audit.evaluate_audit`; bench/README.md "Audit" has the study).

# %%
if ds.has_exact_truth:
    # the false negatives of the run's data are counted from its pair codes (computed once per run by 01)
    codes = wb.pair_codes(run, ds) if use_run and ds.has_extended_positives else None
    quality = audit.evaluate_audit(ds, res, ks=(10, 100), codes=codes)
    truth = wb.truth_protocol(ds)
    wb.write_table(run, "audit_quality", quality, protocol=f"audit candidates of {ds.name} against {truth}; {res.info['protocol']}")
    print(quality.to_string(index=False))
else:
    print(f"note: {ds.name} has no exact truth ({wb.truth_protocol(ds)}): the audit's precision cannot be measured here; review the candidates")

# %% [markdown]
# ## Feeding verdicts back into evaluation
# Once `audit/extended_positives.json` exists (after a review), the first scorer's mAP@R with
# and without the reviewed positives.

# %%
if (out / "extended_positives.json").is_file():
    print(audit.reevaluate(ds, scorers[0], out / "extended_positives.json").to_string(index=False))
else:
    print("no verdicts yet: mark candidates above (or in review.html) first")
