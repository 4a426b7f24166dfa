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
# # 08 · Report
#
# Retrieval under the standard protocols (each table names its protocol) and the summary per
# method; then `report/report.html`: one self-contained page (figures embedded, a narrative per
# section, tables with one precision rule and a protocol line each, the run's parameters,
# warnings and skips, the claims ledger) that opens offline — `vlmkit.report.build_report`.
# Given several `run_dirs`, the report adds a table across methods, seeds and noise ratios.

# %% tags=["parameters"]
run_dir: str = "runs/interactive"  # the run directory every notebook reads and writes
run_dirs: list = []  # other run directories to compare with this one (batch report)

# %%
from pathlib import Path

from vlmkit import report, viz
from vlmkit import workbook as wb

run = wb.prepare_run_dir(run_dir)
ds = wb.run_dataset(run)
wide, summary = report.write_result_tables(run)  # tables/retrieval.csv and tables/summary.csv

# %%
wb.show(viz.table_figure(wide, title=f"Retrieval on {ds.name} — protocol per row ('full NxM': one-to-one labels; ECCV-style = mAP@R/R-P over {wb.truth_protocol(ds)})"), run, "08_retrieval_table")
print(wide.to_string())

# %%
wb.show(viz.table_figure(summary, title=f"Summary per method ({ds.name}; protocol in each column name)"), run, "08_summary_table")
print(summary.T.to_string())

# %%
if run_dirs:
    wb.write_table(run, "across_runs", wb.summarise_runs([run] + [Path(r) for r in run_dirs]))
path = report.build_report(run, run_dirs=run_dirs, claims_md=report.default_claims_md())
print("report:", path)
