"""``vlmkit audit``: rank a dataset's likely false negatives and mismatched pairs, write the review page.

    vlmkit audit DATA [--model ARCH --pretrained W] [--run-dir RUN] [--out DIR] [--top-k K]
                      [--n-review N] [--vacsr-epochs E] [--test-images N --noise-ratio R --seed S]
    vlmkit audit DATA --decisions decisions.json --out DIR      # verdicts → extended_positives.json

DATA is any :func:`vlmkit.data.load_dataset` spec, or ``shapes`` / ``shapes:PRESET`` for the
embedded test split (``--test-images``, ``--seed``; ``--noise-ratio`` permutes that share of
captions, so there are mismatches to find).  Without DATA, ``--run-dir`` gives the run's data.

Scorers: the zero-shot cosine of ``--model/--pretrained`` (default the shipped stand-in) —
unless ``--run-dir`` is given and registers a ``pretrained`` method, which is the same thing
already encoded; every method of ``--run-dir`` (fine-tuned cosine; VACSR's score and σ²); with
``--vacsr-epochs E > 0`` a VACSR adapter trained for E epochs on the zero-shot features under
the data's own labels.  Writes ``candidates.csv`` (+ ``.parquet`` when pyarrow is installed),
``review.html`` and ``audit.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..utils import VlmkitError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", nargs="?", default=None,
                   help="a load_dataset spec or shapes[:PRESET] (default: the --run-dir's data, else shapes)")
    p.add_argument("--model", default="", help="open_clip architecture of --pretrained (empty: the stand-in's own)")
    p.add_argument("--pretrained", default="stand-in",
                   help="stand-in, an open_clip tag, a weights file or a save_model dir")
    p.add_argument("--run-dir", default=None, help="a vlmkit run directory: its registered methods become scorers")
    p.add_argument("--methods", default=None, help="comma-separated subset of the run's methods")
    p.add_argument("--out", default="audit", help="output folder (default ./audit)")
    p.add_argument("--top-k", type=int, default=10,
                   help="false-negative candidates per image and per caption, per scorer")
    p.add_argument("--n-review", type=int, default=50, help="candidates per task on the review page")
    p.add_argument("--vacsr-epochs", type=int, default=0,
                   help="train a VACSR adapter on the zero-shot features (0: none)")
    p.add_argument("--test-images", type=int, default=1000, help="embedded data only: test images")
    p.add_argument("--seed", type=int, default=0, help="embedded data only: data seed (and VACSR's)")
    p.add_argument("--noise-ratio", type=float, default=0.0,
                   help="embedded data only: share of captions permuted (inject_noise)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (encoding)")
    p.add_argument("--cache-dir", default=None, help="feature cache (default $VLMKIT_CACHE/features)")
    p.add_argument("--combine", default=None,
                   help="comma-separated evidence columns of the combined rank (e.g. "
                        "loss:zero-shot,caption_consistency); default: every score, σ² and consistency column")
    p.add_argument("--decisions", default=None,
                   help="a decisions.json from the review: write extended_positives.json and stop")


def load_data(data: str | None, run_dir: str | None, test_images: int, seed: int, noise_ratio: float):
    from .. import workbook as wb

    if data is None:
        if run_dir is not None and (Path(run_dir) / "data.json").is_file():
            ds = wb.run_dataset(run_dir)
        else:
            data = "shapes"
    if data is not None:
        ds = wb.load_test_dataset(data, test_images, seed)
    if noise_ratio:
        if not wb.is_embedded(data or wb.run_data_spec(run_dir)["dataset"]):
            raise VlmkitError(f"--noise-ratio {noise_ratio}: only for the embedded data (it permutes captions to make "
                              "known mismatches)")
        from ..data.shapes import inject_noise

        ds = inject_noise(ds, noise_ratio, seed)
    return ds


def build_scorers(ds, *, model: str = "", pretrained: str = "stand-in", run_dir: str | None = None,
                  methods: str | None = None, vacsr_epochs: int = 0, seed: int = 0, device: str = "auto",
                  cache_dir: str | None = None):
    """The scorers ``vlmkit audit`` and notebook 10 use (module docstring)."""
    from .. import workbook as wb
    from . import scorers_from_run, vacsr_scorer, zero_shot_scorer

    scorers = []
    if run_dir is not None:
        scorers = scorers_from_run(run_dir, ds, wb.parse_methods(methods) or None)
    if not any(s.name == "pretrained" for s in scorers):
        cache = Path(cache_dir) if cache_dir else wb.default_cache_dir() / "features"
        scorers.insert(0, zero_shot_scorer(ds, model, pretrained, device=device, cache_dir=cache))
    if vacsr_epochs > 0:
        base = next(s for s in scorers if s.has_features)
        scorers.append(vacsr_scorer(ds, base, epochs=vacsr_epochs, seed=seed, name="vacsr-audit"))
    return scorers


def parse_combine(text: str | None) -> list[str] | None:
    """``"a,b"`` → ``["a", "b"]``; empty or None → None (the default rule)."""
    cols = [c.strip() for c in (text or "").split(",") if c.strip()]
    return cols or None


def cmd_audit(args: argparse.Namespace) -> int:
    from . import audit_scores, read_decisions, write_decisions, write_outputs

    if args.top_k < 1 or args.n_review < 0 or args.vacsr_epochs < 0:
        raise VlmkitError(f"--top-k {args.top_k}, --n-review {args.n_review}, --vacsr-epochs {args.vacsr_epochs}: "
                          "expected top-k ≥ 1 and non-negative counts")
    ds = load_data(args.data, args.run_dir, args.test_images, args.seed, args.noise_ratio)
    out = Path(args.out)
    if args.decisions:
        paths = write_decisions(ds, read_decisions(args.decisions, ds), out)
        print(f"verdicts of {args.decisions} → {paths['extended_positives']} "
              f"(read it with ds.with_extended_positives(path)) and {paths['decisions']}")
        return 0
    scorers = build_scorers(ds, model=args.model, pretrained=args.pretrained, run_dir=args.run_dir,
                            methods=args.methods, vacsr_epochs=args.vacsr_epochs, seed=args.seed, device=args.device,
                            cache_dir=args.cache_dir)
    res = audit_scores(ds, scorers, top_k=args.top_k, combine=parse_combine(args.combine))
    paths = write_outputs(ds, res, out, n_review=args.n_review)
    print(f"audit of {ds.name} ({ds.num_images} images × {ds.num_captions} captions) by {', '.join(res.scorers)} in "
          f"{res.info['seconds']} s: {res.info['candidates']['false_negative']} false-negative candidates, "
          f"{res.info['candidates']['mismatch']} labelled pairs ranked")
    for task, t in res.tables.items():
        top = t.head(3)
        for _, r in top.iterrows():
            print(f"  {task} #{r['rank']}: image {r['image_id']} ← “{r['caption_text'][:70]}” (combined "
                  f"{r['combined']:.3f})")
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0
