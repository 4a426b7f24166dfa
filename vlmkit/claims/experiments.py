"""The ledger's units of work, each returning plain dicts of metrics and cached as one JSON file.

Units (names are also their cache paths under ``<out>/results/``):

* ``zero-shot/<preset>`` — the pretrained model on the test split (the epoch-0 point of every
  trajectory, the zero-shot row of claims 7 and 12);
* ``ft/<method>/n<noise>/s<seed>`` — one :func:`vlmkit.train.finetune` run, evaluated with its
  best checkpoint (validation RSUM) on the test split; at ``noise`` and ``noise_high`` they feed
  the VACSR claims 1, 2, 6 (``vacsr-joint`` at ``noise`` also 3 and 4: its σ²), at ``clean_noise``
  the m²-Mix claims 7, 8, 9, 11, 12;
  ``ft/<method>/n<noise>/t<τ>/s<seed>`` the same at a fixed base τ (claim 10).
  With ``trajectory`` the geometry and hardness are also measured after every epoch (the run is
  driven one epoch at a time through the loop's own resume);
* ``vacsr/<preset>/<variant>/s<seed>`` — the VACSR adapter trained on frozen features of the
  pretrained model (:func:`vlmkit.vacsr.train_on_features`; claims 3, 4, 5) at the ledger's
  ``noise``; ``vacsr/<preset>/<variant>-n<noise>/s<seed>`` at another noise ratio (the
  ``noise_reference`` units beside claims 1 and 2, with the ``plain`` MLP baseline).

Protocols of the test metrics: ``r1_*``, ``ece_*`` — one-to-one labels over the whole test split
(``full NxM``; ECE of the top-1 softmax over the gallery at T = 0.01); ``authors_ece_*``,
``authors_conf_*``, ``authors_acc_*`` — the m²-Mix authors' calibration protocol
(:func:`vlmkit.metrics.authors_calibration`: first caption per image, square N × N, softmax of
S / τ at the model's own learned τ, top-1 confidence, equal-width bins; %); ``arith_*`` — claim 12
at λ = ``arithmetic_lambda`` and ``arith_sweep`` {λ: accuracy} over ``arithmetic_lambdas``;
``fn_auroc`` / ``fn_auroc_score`` — FN-vs-TN AUROC of σ² and of the score on the same pairs
(:func:`vlmkit.metrics.false_negative_auroc_with_control`); ``map_*``, ``rp_*`` —
mAP@R / R-Precision over the exact extended positives (ECCV-style); geometry on unit features
(uniformity over the union, relative alignment with the text anchor, the m²-Mix authors' code);
``skew`` — sample skewness of the model's scores over all test pairs (cosine; VACSR: the adapter's
logit μ); ``acc_source`` / ``acc_shifted`` — top-1 accuracy (%) over every class on the source and
the domain-shifted test set, cosine to each class prompt (VACSR: the adapter's μ); ``base``,
``novel``, ``H`` (%) — the base-to-novel protocol on the source test set
(:func:`vlmkit.metrics.classification_metrics_from_logits`). Fractions are in [0, 1] except R@1 /
mAP@R / R-P / ECE and the accuracies, which are percentages.

A unit's JSON is written atomically when the unit is done, so an interrupted ledger resumes at
the first missing unit (a fine-tuning run also resumes inside itself from ``checkpoint.pt``).
"""

from __future__ import annotations

import functools
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from ..utils import atomic_write_json, first_captions
from .config import PLAIN, LedgerConfig, vacsr_config


@dataclass
class Unit:
    """One cached experiment: ``name`` (= its cache path) and the call that computes it."""

    name: str
    kind: str
    params: dict[str, Any]

    def path(self, out: Path) -> Path:
        return Path(out) / "results" / f"{self.name}.json"


def ft_name(method: str, noise: float, seed: int, temperature: float | None = None) -> str:
    """Cache name of a fine-tuning unit; ``temperature``: a fixed base τ (claim 10), else the recipe's."""
    return f"ft/{method}/n{noise:g}" + ("" if temperature is None else f"/t{temperature:g}") + f"/s{seed}"


def vacsr_name(preset: str, variant: str, seed: int, noise: float | None = None) -> str:
    """Cache name of a frozen-feature VACSR unit; ``noise=None``: the ledger's own ``noise``."""
    return f"vacsr/{preset}/{variant}" + ("" if noise is None else f"-n{noise:g}") + f"/s{seed}"


GEN_ZERO_SHOT = "gen/zero-shot"
GEN_METHODS = ("contrastive", "m2mix")  # claim 13
GEN_VARIANTS = ("K2", PLAIN)  # claim 14 (PLAIN: the reference beside it)


def gen_ft_name(method: str, seed: int) -> str:
    """Cache name of a claim-13 few-shot fine-tuning unit."""
    return f"gen/ft/{method}/s{seed}"


def gen_vacsr_name(variant: str, seed: int) -> str:
    """Cache name of a claim-14 base-to-novel VACSR unit."""
    return f"gen/vacsr/{variant}/s{seed}"


def plan(cfg: LedgerConfig) -> list[Unit]:
    """Every unit the ledger needs, cheapest first (claim 10's fixed-τ runs last)."""
    units = [Unit(f"zero-shot/{cfg.preset}", "zero-shot", {"preset": cfg.preset})]
    presets = [cfg.preset] + ([cfg.stress_preset] if cfg.stress_preset and cfg.stress_preset != cfg.preset else [])
    for seed in cfg.seeds:
        for preset in presets:
            for variant in (cfg.vacsr_variants if preset == cfg.preset else ("K2",)):
                units.append(Unit(vacsr_name(preset, variant, seed), "vacsr",
                                  {"preset": preset, "variant": variant, "seed": seed}))
        if cfg.noise_reference:
            for variant, noise in ((PLAIN, None), ("K2", cfg.noise_high), (PLAIN, cfg.noise_high)):
                units.append(Unit(vacsr_name(cfg.preset, variant, seed, noise), "vacsr",
                                  {"preset": cfg.preset, "variant": variant, "seed": seed, "noise": noise}))
    for seed in cfg.seeds:
        runs = [(m, cfg.noise, None, False) for m in cfg.ft_methods]
        runs += [(m, cfg.noise_high, None, False) for m in cfg.noisy_methods]
        runs += [(m, cfg.clean_noise, None, cfg.trajectory and m in cfg.trajectory_methods) for m in cfg.clean_methods]
        for method, noise, tau, traj in runs:
            name = ft_name(method, noise, seed, tau)
            if name not in {u.name for u in units}:  # e.g. contrastive when noise == clean_noise
                units.append(Unit(name, "ft", {"method": method, "noise": noise, "seed": seed, "trajectory": traj,
                                               **({} if tau is None else {"temperature": tau})}))
    units.append(Unit(GEN_ZERO_SHOT, "gen-zero-shot", {}))
    units += [Unit(gen_vacsr_name(v, seed), "gen-vacsr", {"variant": v, "seed": seed})
              for seed in cfg.seeds for v in GEN_VARIANTS]
    units += [Unit(gen_ft_name(m, seed), "gen-ft", {"method": m, "seed": seed})
              for seed in cfg.seeds for m in GEN_METHODS]
    # claim 10's fixed-τ runs last: the costliest group, one claim (a ledger cut short by its time
    # budget resumes here)
    units += [Unit(ft_name(m, cfg.clean_noise, seed, t), "ft",
                   {"method": m, "noise": cfg.clean_noise, "seed": seed, "trajectory": False, "temperature": t})
              for seed in cfg.seeds for t in cfg.temperatures for m in ("m2mix", "m2mix-linear")]
    return units


def load_result(unit: Unit, out: Path) -> dict | None:
    p = unit.path(out)
    return json.loads(p.read_text()) if p.is_file() else None


def run_unit(unit: Unit, cfg: LedgerConfig, out: Path) -> dict:
    """The unit's cached result, or compute, store (atomically) and return it."""
    cached = load_result(unit, out)
    if cached is not None:
        return cached
    t0 = time.time()
    fn: Callable[..., dict] = {"zero-shot": zero_shot, "ft": finetune_run, "vacsr": vacsr_frozen,
                               "gen-zero-shot": gen_zero_shot, "gen-ft": gen_finetune_run,
                               "gen-vacsr": gen_vacsr}[unit.kind]
    result = fn(cfg, Path(out), **unit.params)
    result.update(unit=unit.name, seconds=round(time.time() - t0, 1))
    atomic_write_json(unit.path(out), result)
    return result


# ----------------------------------------------------------------------------------- data / models
@functools.lru_cache(maxsize=4)
def test_split(preset: str, n_images: int):
    from ..data import make_shapes

    return make_shapes("test", n_images=n_images, preset=preset)


def base_model(cfg: LedgerConfig):
    """The pretrained model every run starts from (seeded: a random-weight quick model is the same each call)."""
    from ..models import load_model
    from ..utils import seed_everything

    seed_everything(0)
    return load_model(cfg.model, cfg.pretrained, device=cfg.device)


# ----------------------------------------------------------------------------------- measurements
def retrieval(scores: torch.Tensor, test, ece: bool = True) -> dict[str, float]:
    """R@1 (one-to-one labels, %), ECE (%, softmax T = 0.01) and mAP@R / R-P (exact truth, %) per direction."""
    from ..metrics import evaluate_similarity

    t = evaluate_similarity(scores, test.caption_image, positives=test, protocols=("coco5k", "eccv"), temperature=0.01)
    out: dict[str, float] = {}
    for _, r in t.iterrows():
        extended = r.protocol.startswith("extended")
        key = {("R@1", False): "r1", ("ECE", False): "ece", ("mAP@R", True): "map",
               ("R-P", True): "rp"}.get((r.metric, extended))
        if key and r.direction in ("i2t", "t2i"):
            out[f"{key}_{r.direction}"] = float(r.value)
    if not ece:
        out.update(ece_i2t=math.nan, ece_t2i=math.nan)
    return out


def skewness(scores: torch.Tensor) -> float:
    """Sample skewness (Fisher, biased) of every entry of the score matrix."""
    from scipy.stats import skew

    return float(skew(scores.double().reshape(-1).numpy()))


def geometry(img: torch.Tensor, txt: torch.Tensor, test, cfg: LedgerConfig) -> dict[str, float]:
    """Modality gap, uniformity (union), alignment and relative alignment (text anchor), and the
    hardness of m²-Mix negatives slerp(v_j, t_j; λ) vs the original t_j (first caption per image)."""
    from ..analysis import hardness_summary, mixed_negative_hardness
    from ..metrics import alignment, modality_gap, relative_alignment, uniformity

    first = first_captions(test.caption_image, test.num_images, by_image=True)
    h = hardness_summary(mixed_negative_hardness(img, txt[first], lam=cfg.hardness_lambda,
                                                 max_pairs=cfg.hardness_pairs))
    h = h.set_index(h["kind"].str.split(" ").str[0])
    return {"gap": modality_gap(img, txt).distance, "uniformity": uniformity(img, txt),
            "alignment": alignment(img, txt, test.caption_image),
            "rel_alignment": relative_alignment(img, txt, test.caption_image),
            "hardness_original": float(h.loc["original", "mean_similarity"]),
            "hardness_mixed": float(h.loc["mixed", "mean_similarity"]),
            "hardest_original": float(h.loc["original", "mean_hardest"]),
            "hardest_mixed": float(h.loc["mixed", "mean_hardest"])}


def encoder_eval(loaded, test, cfg: LedgerConfig, seed: int, cache_dir: Path | None = None) -> dict[str, Any]:
    """Everything measured on a model's own (cosine) embeddings of the test split."""
    from ..features import encode_dataset
    from .arithmetic import embedding_arithmetic, text_encoder

    f = encode_dataset(loaded, test, cache_dir=cache_dir)
    sims = f.images @ f.texts.T
    out: dict[str, Any] = {**retrieval(sims, test), "skew": skewness(sims), **geometry(f.images, f.texts, test, cfg),
                           **authors_calibration_metrics(sims, test, learned_tau(loaded), cfg.calibration_bins)}
    ar = embedding_arithmetic(f.images, test.truth.objs, text_encoder(loaded), lam=cfg.arithmetic_lambda,
                              max_queries=cfg.arithmetic_queries, seed=seed, sweep=cfg.arithmetic_lambdas)
    out.update({f"arith_{k}": v for k, v in ar.items()})
    return out


def learned_tau(loaded) -> float:
    """The model's own learned τ (the authors' τ = 0.01 is CLIP's); 0.01 for a model without a logit scale."""
    from ..models import learned_temperature
    from ..utils import VlmkitError

    try:
        return learned_temperature(loaded)
    except VlmkitError:
        return 0.01


def authors_calibration_metrics(sims: torch.Tensor, test, tau: float, n_bins: int) -> dict[str, float]:
    """``authors_{ece,conf,acc}_{i2t,t2i}`` (%) and ``authors_tau`` under the m²-Mix authors'
    protocol — the ``*_authors`` columns of :func:`vlmkit.measurements.calibration`, the table
    notebook 07 shows."""
    from ..measurements import calibration

    out: dict[str, float] = {"authors_tau": float(tau)}
    for _, r in calibration(sims, test.caption_image, tau=tau, n_bins=n_bins).iterrows():
        d = r.direction
        out.update({f"authors_ece_{d}": float(r.ece_authors), f"authors_conf_{d}": 100 * float(r.confidence_authors),
                    f"authors_acc_{d}": 100 * float(r.accuracy_authors)})
    return out


def vacsr_measurements(scores: Any, unc: Any, test, *, n_boot: int, seed: int) -> dict[str, float]:
    """The VACSR claims' measurements through :mod:`vlmkit.measurements` — the functions notebook
    05 calls: ``fn_auroc`` / ``fn_auroc_score`` (σ² and the score for false vs true negatives,
    exact truth) and ``fig3_r_{d}`` / ``fig3_r_control_{d}`` (Fig. 3, 10 equal-width bins,
    one-to-one labels; the −score control)."""
    from ..measurements import fig3_summary, fn_auroc

    truth = test.positives()
    fn = fn_auroc(unc, scores, test.caption_image, truth).iloc[0]
    res = {"fn_auroc": float(fn.fn_auroc), "fn_auroc_score": float(fn.fn_auroc_control)}
    for _, r in fig3_summary(scores, unc, test.caption_image, truth, n_bins=10, n_boot=n_boot, seed=seed).iterrows():
        res[f"fig3_r_{r.direction}"] = float(r.pearson)
        res[f"fig3_r_control_{r.direction}"] = float(r.pearson_control)
    return res


# ----------------------------------------------------------------------------------- the units
def zero_shot(cfg: LedgerConfig, out: Path, preset: str) -> dict:
    loaded = base_model(cfg)
    test = test_split(preset, cfg.test_images)
    return {"method": "zero-shot", "preset": preset, "test": encoder_eval(loaded, test, cfg, 0, out / "features")}


def _epochs_done(run_dir: Path) -> int:
    p = run_dir / "history.json"
    return len(json.loads(p.read_text())) if p.is_file() else 0


def _checkpoint_model(cfg: LedgerConfig, tc, run_dir: Path):
    """The CLIP model as the last epoch's ``checkpoint.pt`` holds it."""
    from ..models import load_model

    loaded = load_model(tc.model, tc.pretrained, device=cfg.device)
    state = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=False)["trainable"]
    loaded.model.load_state_dict({k[len("clip."):]: v for k, v in state.items() if k.startswith("clip.")})
    return loaded


def finetune_run(cfg: LedgerConfig, out: Path, method: str, noise: float, seed: int, trajectory: bool,
                 temperature: float | None = None) -> dict:
    """One fine-tuning run (``LedgerConfig.train_config``), one epoch at a time when ``trajectory``;
    ``temperature``: a fixed base τ (claim 10)."""
    from ..features import encode_dataset
    from ..models import load_model
    from ..train import finetune, get_method, load_history

    tc = cfg.train_config(method, noise, seed, temperature)
    run_dir = out / "runs" / (f"{method}-n{noise:g}" + ("" if temperature is None else f"-t{temperature:g}")
                              + f"-s{seed}")
    test = test_split(cfg.preset, cfg.test_images)
    traj: list[dict] = []
    while True:
        done = _epochs_done(run_dir)
        point = run_dir / f"epoch{done}.json"
        if trajectory and done >= 1 and not point.is_file():
            f = encode_dataset(_checkpoint_model(cfg, tc, run_dir), test)
            atomic_write_json(point, {"epoch": done, **geometry(f.images, f.texts, test, cfg)})
        if done >= cfg.epochs:
            break
        finetune(tc, run_dir, stop_after_epochs=1 if trajectory else None)
    if trajectory:
        traj = [json.loads((run_dir / f"epoch{e}.json").read_text()) for e in range(1, cfg.epochs + 1)]
    history = load_history(run_dir)
    best_epoch = int(max(history, key=lambda r: r["rsum"])["epoch"])
    best = run_dir / "best"
    loaded = load_model(pretrained=str(best), device=cfg.device)
    res = encoder_eval(loaded, test, cfg, seed)
    scorer = get_method(method)
    if scorer.score_kind != "cosine":  # the method scores with its own adapter, not the encoder's cosine
        f = encode_dataset(loaded, test)
        scores, unc = scorer.score(best, f.images, f.texts, device=cfg.device)
        res.update({**retrieval(scores, test, ece=False), "skew": skewness(scores), "score": "adapter logit"})
        if unc is not None:  # vacsr-joint: Fig. 3 and the false negatives in the paper's (joint) setting
            res.update(vacsr_measurements(scores, unc, test, n_boot=cfg.fig3_boot, seed=seed))
    (run_dir / "checkpoint.pt").unlink(missing_ok=True)  # 100+ MB each; the result JSON marks the run done
    return {"method": method, "noise": noise, "seed": seed, "temperature": temperature, "best_epoch": best_epoch,
            "train_seconds": sum(r["seconds"] for r in history),
            "test": res, "trajectory": traj}


def vacsr_frozen(cfg: LedgerConfig, out: Path, preset: str, variant: str, seed: int,
                 noise: float | None = None) -> dict:
    """VACSR (:func:`~vlmkit.claims.config.vacsr_config` of ``variant``) trained on frozen
    pretrained features of a training split with ``noise`` (default: the ledger's) noisy
    correspondence, scored exactly on every test pair: retrieval, Fig. 3 (binned Pearson r of the
    top-1 σ² vs R@1, one-to-one labels, equal-width bins, with the −score control) and the AUROC of
    σ² for false vs true negatives (exact truth, every unlabelled pair). The ``plain`` MLP has no
    trained σ², so it gets neither."""
    from ..data import inject_noise, make_shapes
    from ..features import encode_dataset
    from ..vacsr import score_all, train_on_features

    loaded = base_model(cfg)
    train = make_shapes("train", n_images=cfg.vacsr_train_images, preset=preset)
    noise = cfg.noise if noise is None else noise
    if noise > 0:
        train = inject_noise(train, noise)
    test = test_split(preset, cfg.test_images)
    ftr = encode_dataset(loaded, train, cache_dir=out / "features")
    fte = encode_dataset(loaded, test, cache_dir=out / "features")
    vc = vacsr_config(variant, int(ftr.images.shape[1]))
    t0 = time.time()
    adapter, _ = train_on_features(ftr.images, ftr.texts, torch.from_numpy(train.caption_image), vc,
                                   epochs=cfg.vacsr_epochs, batch_size=cfg.vacsr_batch_size, lr=cfg.vacsr_lr,
                                   seed=seed, device=cfg.device, show_progress=False)
    train_seconds = time.time() - t0
    scores, unc = score_all(adapter, fte.images, fte.texts, device=cfg.device, show_progress=False)
    res: dict[str, Any] = {**retrieval(scores, test, ece=False), "skew": skewness(scores)}
    record = {"preset": preset, "variant": variant, "seed": seed, "noise": noise,
              "train_seconds": round(train_seconds, 1), "test": res}
    if variant == PLAIN:
        return record
    res.update(vacsr_measurements(scores, unc, test, n_boot=cfg.fig3_boot, seed=seed))
    return record


# ----------------------------------------------------------------- the generalisation claims (13, 14)
@functools.lru_cache(maxsize=4)
def gen_test(domain: str, grid: tuple[int, int], per_class: int):
    """The claims-13/14 test set of ``domain`` (every class, ``per_class`` images each, seed 0)."""
    from ..data.classification import make_shape_classes

    return make_shape_classes("test", domain, per_class, "all", grid[0], grid[1], seed=0)


def gen_base_classes(cfg: LedgerConfig):
    from ..data.classification import base_novel_split

    return base_novel_split(cfg.gen_n_classes(), cfg.gen_split_seed)[0]


def class_features(loaded, ds) -> torch.Tensor:
    """(C, d) unit text embeddings of ``ds``'s class prompts (its first template)."""
    from .arithmetic import text_encoder

    return text_encoder(loaded)(ds.class_prompts())


def gen_scores(logits: torch.Tensor, labels, cfg: LedgerConfig, domain: str) -> dict[str, float]:
    """``acc_<domain>`` (top-1 over every class, %) and, on the source domain, ``base`` / ``novel``
    / ``H`` (%, the base-to-novel protocol) of (n, C) scores."""
    from ..metrics import classification_metrics_from_logits

    m = classification_metrics_from_logits(logits, labels, base_classes=gen_base_classes(cfg) if domain == "source"
                                           else None, ks=(1,))
    out = {f"acc_{domain}": 100.0 * m["top1"]}
    if domain == "source":
        out.update({k: 100.0 * m[k] for k in ("base", "novel", "H")})
    return out


def classification_eval(loaded, cfg: LedgerConfig, cache_dir: Path | None = None) -> dict[str, float]:
    """A model's own cosine classification of both test sets (the zero-shot recipe: image · class prompt)."""
    from ..features import encode_dataset

    out: dict[str, float] = {}
    for domain in ("source", "shifted"):
        ds = gen_test(domain, cfg.gen_grid, cfg.gen_test_per_class)
        img = encode_dataset(loaded, ds.as_pairs(), cache_dir=cache_dir).images
        out.update(gen_scores(img @ class_features(loaded, ds).T, ds.labels, cfg, domain))
    return out


def gen_zero_shot(cfg: LedgerConfig, out: Path) -> dict:
    """The pretrained model on the claims-13/14 test sets (claim 13's zero-shot row, claim 14's baseline)."""
    return {"method": "zero-shot", "test": classification_eval(base_model(cfg), cfg, out / "features")}


def gen_finetune_run(cfg: LedgerConfig, out: Path, method: str, seed: int) -> dict:
    """Claim 13: ``gen_shots``-shot fine-tuning (:meth:`LedgerConfig.gen_train_config`) through
    :func:`vlmkit.train.finetune` (resumes inside itself), its **last** epoch evaluated on the source
    and the shifted test set (few-shot protocols train a fixed number of epochs; the loop's
    validation RSUM is logged, not used: with one prompt per class it counts same-class ties)."""
    import shutil

    from ..train import finetune, load_history

    tc = cfg.gen_train_config(method, seed)
    run_dir = out / "runs" / f"gen-{method}-s{seed}"
    if _epochs_done(run_dir) < cfg.gen_epochs or not (run_dir / "checkpoint.pt").is_file():
        finetune(tc, run_dir)  # no checkpoint: (re)starts the run
    loaded = _checkpoint_model(cfg, tc, run_dir)
    res = classification_eval(loaded, cfg)
    history = load_history(run_dir)
    (run_dir / "checkpoint.pt").unlink(missing_ok=True)  # the result JSON marks the run done
    shutil.rmtree(run_dir / "best", ignore_errors=True)  # not used: the last epoch is evaluated
    return {"method": method, "seed": seed, "epochs": cfg.gen_epochs,
            "train_images": cfg.gen_shots * cfg.gen_n_classes(), "train_seconds": sum(r["seconds"] for r in history),
            "test": res}


def gen_vacsr(cfg: LedgerConfig, out: Path, variant: str, seed: int) -> dict:
    """Claim 14: VACSR (``variant``) trained on frozen pretrained features of the ``gen_shots``-shot
    base-class source images (the few-shot sample drawn with ``seed``), each with its class prompt
    (one caption per image: other images of the class are negatives under the binary labels);
    every source-test image scored against every class prompt by the adapter's μ; base / novel / H."""
    from ..data.classification import make_shape_classes
    from ..features import encode_dataset
    from ..vacsr import score_all, train_on_features

    loaded = base_model(cfg)
    g = cfg.gen_grid
    train = make_shape_classes("train", "source", cfg.gen_shots, "base", g[0], g[1], seed=seed,
                               split_seed=cfg.gen_split_seed).as_pairs()
    ftr = encode_dataset(loaded, train, cache_dir=out / "features")
    test = gen_test("source", g, cfg.gen_test_per_class)
    fte = encode_dataset(loaded, test.as_pairs(), cache_dir=out / "features")
    vc = vacsr_config(variant, int(ftr.images.shape[1]))
    t0 = time.time()
    adapter, _ = train_on_features(ftr.images, ftr.texts, torch.from_numpy(train.caption_image), vc,
                                   epochs=cfg.gen_vacsr_epochs,
                                   batch_size=max(2, min(cfg.gen_vacsr_batch_size, train.num_images)),
                                   lr=cfg.vacsr_lr, seed=seed, device=cfg.device, show_progress=False)
    train_seconds = time.time() - t0
    scores, _ = score_all(adapter, fte.images, class_features(loaded, test), device=cfg.device, show_progress=False)
    return {"variant": variant, "seed": seed, "train_images": train.num_images,
            "train_seconds": round(train_seconds, 1), "test": gen_scores(scores, test.labels, cfg, "source")}
