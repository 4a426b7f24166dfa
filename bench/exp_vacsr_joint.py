"""Jointly trained VACSR and its ablations against ``sigmoid`` fine-tuning at the workbook's budget
(issue #19, items 4 and 6): notebook 02's defaults — 2,000 embedded training images (5 captions
each), 200 validation images, noise 0.2, 2 epochs, batch 128 (the ``workbook`` recipe of
:class:`vlmkit.train.TrainConfig` unless ``--lr`` / ``--epochs`` / ``--train-config`` say otherwise)
— fine-tuned from ``--pretrained`` (default the shipped stand-in).

Methods (``--methods``, a comma-separated subset, run seed-major: every method at the first seed,
then every method at the next, so that a partial run is still a like-for-like table):

- ``sigmoid`` — SigLIP fine-tuning, ranked by cosine (no σ²);
- ``vacsr-joint`` — the encoders and the paper's adapter (``VACSRConfig()``) trained together with
  the issue-#19 recipe (adapter warm-started from frozen features, towers at a fraction of its lr);
- ``vacsr-joint-hetero`` — the same recipe with the ``vacsr-hetero`` ablation (σ² a decoder output);
- ``vacsr-joint-plain`` — the same recipe with the same MLP, variational parts off
  (``VACSRConfig.plain_sigmoid``: the frozen bench's ``plain-sigmoid-mlp``).

The three adapter rows differ only in the adapter's fields (:data:`JOINT_VARIANTS`); ``--vacsr``
(JSON: loop keys such as ``lr``, ``warm_epochs``, ``text_lr_frac`` and ``VACSRConfig`` fields) is
applied on top of each. Each run is :func:`vlmkit.train.finetune` (resumed from its checkpoint when
re-run); the best-RSUM checkpoint encodes the full test split (1,000 images × 5,000 captions), the
adapters rank by their logit (:func:`vlmkit.vacsr.score_all`), ``sigmoid`` by cosine. Per run the
columns of the frozen bench (:func:`exp_vacsr_frozen.pair_metrics`: R@1 under one-to-one labels,
mAP@R under the exact truth, Fig. 3 r of σ² with the −score control, FN AUROC of σ² and of the score)
plus time: ``sec_per_epoch`` (the joint epochs' training steps, validation excluded),
``warm_seconds`` (the adapter's frozen-feature warm start and model loading: wall time not spent in
the joint epochs) and ``wall_seconds``. Rows are appended to ``<out>/results.csv`` as they finish;
a (method, seed) already there is skipped, so an interrupted batch is continued by re-running it.

    nice python bench/exp_vacsr_joint.py --seeds 0,1,2 --pretrained /path/to/stand-in-web --out runs/exp-vacsr-joint-web
    python bench/exp_vacsr_joint.py --methods sigmoid,vacsr-joint --seeds 0 --lr 1e-4
    python bench/exp_vacsr_joint.py --methods vacsr-joint --tag -cold --vacsr '{"warm_start": "none", "text_lr_frac": null, "image_lr_frac": null}'
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from exp_vacsr_frozen import pair_metrics, parse_seeds, summary_table  # noqa: E402  (the frozen bench's columns)

#: adapter rows of the joint bench → the ``TrainConfig.vacsr`` fields that make them (on top of ``--vacsr``)
JOINT_VARIANTS = ("vacsr-joint", "vacsr-joint-hetero", "vacsr-joint-plain")
METHODS = ("sigmoid",) + JOINT_VARIANTS


def variant_fields(method: str) -> dict:
    """The ``VACSRConfig`` fields of a joint adapter row: none for ``vacsr-joint`` (the paper's
    adapter), ``mechanism="hetero"`` for ``vacsr-joint-hetero``, and for ``vacsr-joint-plain`` the
    fields on which :meth:`VACSRConfig.plain_sigmoid` differs from the default (so the two benches
    train the same ablation, whatever its definition becomes)."""
    from vlmkit.utils import VlmkitError
    from vlmkit.vacsr import VACSRConfig

    if method == "vacsr-joint":
        return {}
    if method == "vacsr-joint-hetero":
        return {"mechanism": "hetero"}
    if method == "vacsr-joint-plain":
        base, plain = VACSRConfig(dim=8).to_dict(), VACSRConfig.plain_sigmoid(8).to_dict()
        return {k: v for k, v in plain.items() if base[k] != v}
    raise VlmkitError(f"--methods: {method!r} is not a jointly trained adapter; expected one of {JOINT_VARIANTS}")


def train_config(method: str, seed: int, *, pretrained: str, vacsr: dict, overrides: dict):
    """The :class:`vlmkit.train.TrainConfig` of one run: ``overrides`` (TrainConfig fields: the
    recipe) for every method; for the adapter rows ``method="vacsr-joint"`` with
    ``{**variant_fields(method), **vacsr}``. Unknown fields raise naming ``--train-config``."""
    from vlmkit.train import TrainConfig
    from vlmkit.utils import VlmkitError

    if method not in METHODS:
        raise VlmkitError(f"--methods: unknown method {method!r}; expected a comma-separated subset of {METHODS}")
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    reserved = {"method", "seed", "data_seed", "pretrained", "vacsr"}
    bad = sorted((set(overrides) - names) | (set(overrides) & reserved))
    if bad:
        raise VlmkitError(f"--train-config: field {bad[0]!r} is not allowed; expected TrainConfig fields other than "
                          f"{sorted(reserved)} (those have their own options)")
    kw = {"dataset": "shapes", **overrides, "pretrained": pretrained, "seed": seed, "data_seed": seed}
    if method == "sigmoid":
        return TrainConfig(method="sigmoid", **kw)
    return TrainConfig(method="vacsr-joint", vacsr={**variant_fields(method), **vacsr}, **kw)


def plan(methods: list[str], seeds: list[int], done: set[tuple[str, int]] = frozenset()) -> list[tuple[str, int]]:
    """Seed-major run order (all methods at the first seed, then the next …), ``done`` left out."""
    return [(m, s) for s in seeds for m in methods if (m, s) not in done]


def epoch_timing(history: list[dict]) -> dict:
    """Seconds per joint epoch from a finetune history: ``sec_per_epoch`` = the mean over epochs
    of the training steps' time (step_ms × steps in the epoch; validation excluded) and
    ``sec_per_epoch_with_val`` = the mean epoch wall time including validation."""
    steps, prev, train_s = [], 0, []
    for r in history:
        steps.append(r["step"] - prev)
        prev = r["step"]
        train_s.append(r["step_ms"] * steps[-1] / 1000)
    n = max(len(history), 1)
    return {"sec_per_epoch": round(sum(train_s) / n, 1), "sec_per_epoch_with_val": round(sum(r["seconds"] for r in history) / n, 1)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--seeds", default=None, help="comma-separated seeds (training and data seed), run seed-major; default 0")
    ap.add_argument("--seed", type=int, default=None, help="one seed (the same as --seeds N)")
    ap.add_argument("--pretrained", default="stand-in",
                    help="the model fine-tuned: 'stand-in' (the shipped one) or a save_model directory / checkpoint")
    ap.add_argument("--lr", type=float, default=None, help="TrainConfig.lr (the towers' lr for sigmoid); default the workbook recipe's")
    ap.add_argument("--epochs", type=int, default=None, help="default the workbook recipe's (2)")
    ap.add_argument("--train-images", type=int, default=2000)
    ap.add_argument("--val-images", type=int, default=200)
    ap.add_argument("--test-images", type=int, default=None, help="default: the full test split (1,000)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--noise", type=float, default=0.2)
    ap.add_argument("--train-config", default="{}", help="JSON: further TrainConfig fields for every method (the recipe)")
    ap.add_argument("--vacsr", default="{}", help="JSON: TrainConfig.vacsr for the adapter rows (loop keys and VACSRConfig fields)")
    ap.add_argument("--tag", default="", help="suffix of the adapter rows' names and output folders")
    ap.add_argument("--out", default="runs/exp-vacsr-joint")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)

    from vlmkit.data import make_shapes
    from vlmkit.features import encode_dataset
    from vlmkit.models import load_model
    from vlmkit.train import finetune
    from vlmkit.utils import VlmkitError, atomic_to_csv
    from vlmkit.vacsr import load_adapter, score_all

    def parse_json(opt: str, text: str) -> dict:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise VlmkitError(f"{opt} {text!r}: not JSON ({e})") from None
        if not isinstance(d, dict):
            raise VlmkitError(f"{opt} {text!r}: expected a JSON object")
        return d

    if args.seeds is not None and args.seed is not None:
        raise VlmkitError("--seed and --seeds: give one of them")
    seeds = [args.seed] if args.seed is not None else parse_seeds(args.seeds or "0")
    vacsr, extra = parse_json("--vacsr", args.vacsr), parse_json("--train-config", args.train_config)
    overrides = {"train_images": args.train_images, "val_images": args.val_images, "noise_ratio": args.noise,
                 "batch_size": args.batch_size, "device": args.device}
    overrides.update({k: v for k, v in (("lr", args.lr), ("epochs", args.epochs)) if v is not None})
    overrides.update(extra)
    methods = args.methods.split(",")
    cfgs = {(m, s): train_config(m, s, pretrained=args.pretrained, vacsr=vacsr, overrides=overrides) for s in seeds for m in methods}

    out = Path(args.out)
    csv = out / "results.csv"
    rows = pd.read_csv(csv).to_dict("records") if csv.is_file() else []
    name_of = {m: m + (args.tag if m != "sigmoid" else "") for m in methods}
    done = {(r["method"], int(r["seed"])) for r in rows}
    todo = plan(methods, seeds, {(m, s) for m in methods for s in seeds if (name_of[m], s) in done})
    test = make_shapes("test", n_images=args.test_images)
    for method, seed in todo:
        cfg, name = cfgs[(method, seed)], name_of[method]
        print(f"== {name} seed {seed}: {json.dumps(cfg.vacsr) if cfg.vacsr else ''}", flush=True)
        t0 = time.time()
        res = finetune(cfg, out / f"{name}-s{seed}")
        wall = time.time() - t0
        timing = epoch_timing(res.history)
        tuned = load_model(pretrained=res.best_dir, device=args.device)
        f = encode_dataset(tuned, test)
        if method == "sigmoid":
            scores, unc, label = f.images @ f.texts.T, None, "sigmoid"
        else:
            adapter = load_adapter(res.best_dir / "vacsr_adapter")
            scores, unc = score_all(adapter, f.images, f.texts, device=args.device, show_progress=False)
            label = adapter.config.label
        row = {"method": name, "seed": seed, "adapter": label, **timing,
               "warm_seconds": round(wall - sum(r["seconds"] for r in res.history), 1), "wall_seconds": round(wall, 1),
               "best_epoch": res.best_epoch}
        row.update(pair_metrics(scores, unc, test, has_sigma2=method in ("vacsr-joint", "vacsr-joint-hetero")))
        row.update({"val": json.dumps([{k: round(v, 2) for k, v in r.items() if k in ("epoch", "i2t_r1", "t2i_r1", "rsum")}
                                       for r in res.history]), "pretrained": str(args.pretrained), "lr": cfg.lr, "epochs": cfg.epochs,
                    "vacsr": json.dumps(cfg.vacsr, sort_keys=True)})
        rows.append(row)
        print(json.dumps(row, default=float), flush=True)
        atomic_to_csv(pd.DataFrame(rows), csv)
    df = pd.DataFrame(rows)
    order = {name_of[m]: i for i, m in enumerate(methods)}
    df = df[df.method.isin(order) & df.seed.isin(seeds)].sort_values("method", key=lambda c: c.map(order), kind="stable")
    print(f"\nprotocol: fine-tuned from pretrained={args.pretrained}; {overrides}; --vacsr {json.dumps(vacsr)}; test "
          f"{len(test.caption_image)} captions x {test.num_images} images; seeds {seeds}")
    print("R@1: one-to-one labels (%); mAP@R: exact truth (%); Fig. 3: Pearson r of bin R@1 vs bin top-1 σ², 10 equal-width "
          "bins, labels; control: −score; FN AUROC over all unlabelled pairs, exact truth; sec_per_epoch: joint training steps")
    if len(df):
        print(summary_table(df, skip=("best_epoch", "lr", "epochs")))


if __name__ == "__main__":
    main()
