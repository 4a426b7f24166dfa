"""The VACSR table of bench/README.md (issue #19, item 6) from the two benches' ``results.csv``.

    python bench/table_vacsr.py runs/exp-vacsr-frozen/results.csv runs/exp-vacsr-joint/results.csv [MORE.csv ...]

Every further CSV (e.g. a ``--tag`` run of ``exp_vacsr_joint.py``) adds its rows to the joint part.
Cells are mean ± sd over the seeds present (the ``seeds`` column lists them; one seed: the value).
A missing or unreadable CSV stops it with a message naming the file and the bench that writes it
(:data:`PRODUCERS`; bench/README.md, "VACSR").
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from vlmkit.utils import VlmkitError

NAMES = {
    "vacsr": "**`vacsr`** (the paper's adapter)",
    "vacsr-hetero": "`vacsr-hetero` (ablation: σ² a decoder output)",
    "plain-sigmoid-mlp": "`plain-sigmoid-mlp` (same MLP, variational parts off)",
    "cosine": "cosine (the frozen stand-in, zero-shot)",
    "sigmoid": "`sigmoid` (SigLIP fine-tuning; ranked by cosine)",
    "vacsr-joint": "**`vacsr-joint`** (the paper's adapter)",
    "vacsr-joint-hetero": "`vacsr-joint-hetero` (σ² a decoder output)",
    "vacsr-joint-plain": "`vacsr-joint-plain` (same MLP, variational parts off)",
}
HEADER = ("| | scorer | seeds | i→t R@1 | t→i R@1 | i→t mAP@R | t→i mAP@R | Fig. 3 r of σ², i→t / t→i | "
          "same bins, −score (control) | FN AUROC of σ² | FN AUROC of the score (control) | σ² 5 %–95 % | "
          "σ² median pos / FN / TN | s / epoch |")


PRODUCERS = {
    "frozen": "python bench/exp_vacsr_frozen.py --seeds 0,1,2 --out runs/exp-vacsr-frozen  "
              "(writes runs/exp-vacsr-frozen/results.csv)",
    "joint": "python bench/exp_vacsr_joint.py --seeds 0,1,2 --lr 1e-4 --epochs 2 --out runs/exp-vacsr-joint  "
             "(writes runs/exp-vacsr-joint/results.csv)",
}
"""The command whose ``results.csv`` each part of the table reads (the first CSV: frozen; the rest: joint)."""
COLUMNS = ("method", "seed", "r1_i2t", "r1_t2i")
"""Columns every results.csv of the two benches has (the rest may be missing: shown as —)."""


def read_results(path: str, kind: str) -> pd.DataFrame:
    """The rows of one bench's ``results.csv``; a missing, empty or foreign file raises a
    ``VlmkitError`` naming it and the command that writes it."""
    where = f"{path} (the {kind} part of the table)"
    if not Path(path).is_file():
        raise VlmkitError(f"{where}: no such file; it is written by\n    {PRODUCERS[kind]}")
    try:
        df = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise VlmkitError(f"{where}: not a results CSV ({type(exc).__name__}: {exc}); it is written by\n"
                          f"    {PRODUCERS[kind]}") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise VlmkitError(f"{where}: no column(s) {', '.join(missing)}: not a results.csv of the VACSR benches; "
                          f"it is written by\n    {PRODUCERS[kind]}")
    return df


def ms(x: pd.Series, nd: int = 1) -> str:
    """``mean ± sd`` of the finite values (one value: itself; none: —)."""
    x = x.dropna()
    if len(x) == 0:
        return "—"
    if len(x) == 1:
        return f"{x.iloc[0]:.{nd}f}"
    return f"{x.mean():.{nd}f} ± {x.std():.{nd}f}"


def joined(*cols: pd.Series, nd: int = 3, sep: str = " / ") -> str:
    """Means of several columns side by side (— when all are missing)."""
    parts = [f"{c.dropna().mean():.{nd}f}" if len(c.dropna()) else "—" for c in cols]
    return "—" if all(p == "—" for p in parts) else sep.join(parts)


def col(d: pd.DataFrame, name: str) -> pd.Series:
    return d[name] if name in d else pd.Series(dtype=float)


def rows(kind: str, df: pd.DataFrame) -> list[str]:
    out = []
    for m in df.method.unique():
        d = df[df.method == m]
        out.append(
            f"| {kind} | {NAMES.get(m, f'`{m}`')} | {','.join(str(s) for s in d.seed)} | {ms(d.r1_i2t)} | {ms(d.r1_t2i)} | "
            f"{ms(d.map_i2t, 2)} | {ms(d.map_t2i, 2)} | "
            f"{ms(d.fig3_r_i2t, 3)} / {ms(d.fig3_r_t2i, 3)} | {ms(d.fig3_control_i2t, 3)} / {ms(d.fig3_control_t2i, 3)} | "
            f"{ms(d.fn_auroc_sigma2, 3)} | {ms(d.fn_auroc_score, 3)} | "
            f"{joined(col(d, 'sigma2_q05'), col(d, 'sigma2_q95'), sep='–')} | "
            f"{joined(col(d, 'sigma2_median_pos'), col(d, 'sigma2_median_fn'), col(d, 'sigma2_median_tn'))} | "
            f"{ms(d.sec_per_epoch, 0)} |".replace("— / —", "—"))
    return out


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    try:  # every file read before anything is printed: no half table on an error
        parts = [("frozen" if i == 0 else "joint", read_results(path, "frozen" if i == 0 else "joint"))
                 for i, path in enumerate(argv)]
    except VlmkitError as exc:
        print(f"table_vacsr.py: {exc}", file=sys.stderr)
        return 2
    print(HEADER)
    print("|" + "---|" * (HEADER.count("|") - 1))
    for kind, df in parts:
        for line in rows(kind, df):
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
