"""The premise table of bench/README.md (issue #20) from ``bench/exp_premise.py``'s ``results.csv``.

    python bench/table_premise.py runs/premise/results.csv

One row per method: R@1 both ways (mean ± sd over seeds), the gain over zero-shot with its 95 %
Student-t interval over the seeds (zero-shot is deterministic: one row), the modality gap, and ECE of
image → text under the authors' protocol with its mean confidence / accuracy.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from vlmkit.stats import t_interval

COLUMNS = ("method", "seed", "i2t_R@1", "t2i_R@1", "gap", "ece_i2t", "conf_i2t", "acc_i2t")
NAMES = {"zero-shot": "zero-shot", "contrastive": "contrastive", "sigmoid": "sigmoid (SigLIP)", "m2mix": "m²-Mix"}


def read(path: str) -> pd.DataFrame:
    if not Path(path).is_file():
        sys.exit(f"table_premise: {path} does not exist; bench/exp_premise.py --out DIR writes DIR/results.csv")
    table = pd.read_csv(path)
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing or not (table.method == "zero-shot").any():
        sys.exit(f"table_premise: {path} is not an exp_premise.py results.csv (missing {missing or 'the zero-shot row'})")
    return table


def cell(values: pd.Series, nd: int = 1) -> str:
    mean, sd, _, _ = t_interval(list(values))
    return f"{mean:.{nd}f}" if sd != sd else f"{mean:.{nd}f} ± {sd:.{nd}f}"


def gain(values: pd.Series, zero: float) -> str:
    mean, _, lo, hi = t_interval([v - zero for v in values])
    return f"{mean:+.1f}" if lo != lo else f"{mean:+.1f} [{lo:.1f}, {hi:.1f}]"


def markdown(table: pd.DataFrame) -> str:
    zero = table[table.method == "zero-shot"].iloc[0]
    lines = ["| method | seeds | i→t R@1 | t→i R@1 | Δ i→t [95 % CI] | Δ t→i [95 % CI] | gap | ECE authors i→t | "
             "conf / acc (authors) |", "|---|---|---|---|---|---|---|---|---|"]
    for method, rows in table.groupby("method", sort=False):
        seeds = ",".join(str(s) for s in sorted(rows.seed))
        first = method == "zero-shot"
        lines.append(f"| {NAMES.get(method, method)} | {seeds} | {cell(rows['i2t_R@1'])} | {cell(rows['t2i_R@1'], 2)} | "
                     f"{'' if first else gain(rows['i2t_R@1'], zero['i2t_R@1'])} | "
                     f"{'' if first else gain(rows['t2i_R@1'], zero['t2i_R@1'])} | {cell(rows['gap'], 3)} | "
                     f"{cell(rows['ece_i2t'])} % | {rows.conf_i2t.mean():.3f} / {rows.acc_i2t.mean():.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(markdown(read(sys.argv[1])))
