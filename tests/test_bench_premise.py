"""bench/table_premise.py: the premise table's cells against hand-computed values."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
spec = importlib.util.spec_from_file_location("table_premise", BENCH / "table_premise.py")
table_premise = importlib.util.module_from_spec(spec)
spec.loader.exec_module(table_premise)


def _csv(tmp_path, rows):
    path = tmp_path / "results.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


def test_gain_cells_are_the_mean_and_t_interval_of_the_paired_gains(tmp_path):
    base = {"gap": 0.9, "ece_i2t": 30.0, "conf_i2t": 0.2, "acc_i2t": 0.5}
    rows = [{"method": "zero-shot", "seed": 0, "i2t_R@1": 50.0, "t2i_R@1": 20.0, **base},
            {"method": "contrastive", "seed": 0, "i2t_R@1": 55.0, "t2i_R@1": 25.0, **base, "gap": 0.7},
            {"method": "contrastive", "seed": 1, "i2t_R@1": 57.0, "t2i_R@1": 27.0, **base, "gap": 0.8}]
    md = table_premise.markdown(table_premise.read(_csv(tmp_path, rows))).splitlines()
    assert md[2].startswith("| zero-shot | 0 | 50.0 | 20.00 |  |  | 0.900 | 30.0 % | 0.200 / 0.500 |")
    # gains 5 and 7: mean 6, sd √2, t(0.975, 1) = 12.706 → half-width 12.706 · √2 / √2
    assert "| contrastive | 0,1 | 56.0 ± 1.4 | 26.00 ± 1.41 | +6.0 [-6.7, 18.7] | +6.0 [-6.7, 18.7] | 0.750 ± 0.071 |" in md[3]


def test_missing_or_foreign_csv_is_named(tmp_path):
    with pytest.raises(SystemExit, match="exp_premise.py --out DIR"):
        table_premise.read(str(tmp_path / "nope.csv"))
    with pytest.raises(SystemExit, match="zero-shot row"):
        table_premise.read(_csv(tmp_path, [{c: 1 for c in table_premise.COLUMNS}]))
