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
# # 09 · The claims ledger
#
# Every headline claim of the two papers re-tested on the embedded data's exact truth, with
# seeds, spread and a verdict — the tables and figures of `docs/results.md`. Claims 3 and 4 are
# split into the paper's own test (3a, 4a) and a control against the score itself (3b, 4b), each
# read jointly fine-tuned (the paper's setting) and on frozen features; each
# claim is read only under its preconditions (the method trained; the compared fine-tuning beats
# zero-shot; for calibration, fine-tuning is over-confident), listed beside its verdict. This
# notebook only *reads* the ledger; it is made by `vlmkit claims --out runs/claims` (hours on
# 2 CPU cores, `--workers 2` runs two experiments at once; `vlmkit claims --quick` in minutes at
# tiny sizes). Without a ledger of your own it shows the committed one behind `docs/results.md`
# (3 seeds on the shipped stand-in). The verdict rule is stated once, at the top of the table
# below.

# %% tags=["parameters"]
run_dir: str = "runs/interactive"  # the run directory every notebook reads and writes
claims_out: str = "runs/claims"  # the --out folder of `vlmkit claims` (relative: here, else in the checkout)
committed: bool = True  # no ledger in claims_out: show the checkout's committed one (docs/results.md)

# %%
from vlmkit import viz
from vlmkit import workbook as wb
from vlmkit.claims import RULE, find_ledger
from vlmkit.claims.document import FIGURES, verdict_table

run = wb.prepare_run_dir(run_dir)
ledger = find_ledger(claims_out, committed=committed)
if ledger is not None:
    print("ledger:", ledger["source"])
else:
    print(f"ledger not run: no ledger.json in {claims_out!r}. Make it with `vlmkit claims --out {claims_out}` "
          "(or `vlmkit claims --quick --out DIR` to try the pipeline), then rerun this notebook.")

# %%
if ledger is not None:
    print(RULE)
    print(f"\ncommand: {ledger['command']}; {ledger['compute_seconds'] / 60:.1f} min of compute; {ledger['sizes']}")
    table = verdict_table(ledger)
    wb.write_table(run, "claims", table, protocol="per row (protocol column); verdicts by the rule above")
    wb.show(viz.table_figure(table[["#", "verdict", "claim", "paper"]], transpose=False, widths=[0.3, 1.0, 4.0, 1.3],
                             title="Claims ledger: verdict per claim (values, intervals, preconditions and protocol per "
                                   "claim in tables/claims.csv)"), run, "09_verdicts")
    print(table[["#", "verdict", "claim"]].to_string(index=False))

# %%
if ledger is not None:
    for name, make in FIGURES.items():
        if name == "intervals" or ledger["trajectories"]:
            wb.show(make(ledger), run, f"09_{name}")

# %% [markdown]
# Each claim's paragraph — what the result means for a user — is in `docs/results.md` (or the
# `--doc` file of the ledger's command).
