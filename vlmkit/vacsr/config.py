"""``VACSRConfig``: every switch of the VACSR adapter and its loss (issue #5).

Defaults follow the paper where it is explicit (K = 2 components, k = 1 hardest negative,
λ_KL = 5e-4, λ_pos = λ_neg = 1, STE on, sigmoid on σ²) and docs/design.md ("VACSR") where it is not.
Choices the paper leaves open are switches; each is documented on its field.
"""

from __future__ import annotations

import math

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from vlmkit.utils import VlmkitError

_ACTIVATIONS = ("relu", "gelu", "silu")
#: what σ² is and how it acts on the label (see VACSRConfig.mechanism); "paper" is VACSR, the
#: others are ablations shown under their own names (``vacsr-hetero``, ``vacsr-side``), never "VACSR"
MECHANISMS = ("paper", "hetero", "side")
#: the name under which a mechanism's adapter is shown in tables and plots
MECHANISM_LABELS = {"paper": "vacsr", "hetero": "vacsr-hetero", "side": "vacsr-side"}
RECON_REDUCTIONS = ("batch", "mean", "sum")


@dataclass
class VACSRConfig:
    """All VACSR switches. Architecture fields decide the checkpoint layout; loss fields do not.

    Architecture
        dim: feature dimension d of v and t (the pair vector is s = v ⊙ t, d-dim).
        enc_hidden: hidden widths of the encoder MLP (≥ 1 layer; the first acts on s and is
            the one that factorises, W s = (W diag v) t).
        latent_dim: L, the dimension of z.
        n_components: K Gaussian components of the posterior (paper ablates 1–4; default 2).
        dec_hidden: hidden widths of the decoder MLP; may be empty. The decoder outputs the
            similarity logit only with ``mechanism="paper"`` (the paper: σ² is not a decoder
            output), (logit, raw variance) in the ``hetero`` / ``side`` ablations.
        activation: "relu" (default; cheapest on GPU), "gelu" or "silu".
        cosine_skip: initial scale a of a learnable skip path, logit += a·(v·t) (vlmkit's
            addition, not in the paper; the default 0 is the paper's adapter; a run with a > 0
            is labelled ``vacsr+skip``, never plain VACSR). v·t = Σ s is
            the encoder's own score, so with a > 0 the adapter starts from the encoder's
            ranking and learns a correction. On frozen embedded features it keeps VACSR
            close to cosine where the paper's adapter falls far below it (bench/README.md,
            VACSR). It factorises like the first layer (one extra v @ tᵀ).
        mixing: "per_pair" — α = softmax of an encoder head, so each pair picks its component
            (docs/design.md / the summary: "the encoder selects the component based on the input");
            "global" — α is one learnable K-vector shared by all pairs (the paper's
            "learnable mixing coefficient" read literally).
    Sampling / outputs
        gumbel_tau: temperature of the Gumbel-softmax component choice.
        gumbel_hard: straight-through hard one-hot (value one-hot, gradient of the soft sample).
        sigmoid_var: σ² = sigmoid(raw) ∈ (0, 1) (paper: "we additionally apply a sigmoid function
            to normalize the output"); False: σ² = exp(raw) ∈ (0, ∞) (ablation). With
            ``mechanism="paper"`` this is the variance of the latent components themselves
            (σ²_k = sigmoid(head output), used to sample z and in the KL).
        inference: deterministic scoring; "mean" — z = Σ_k α_k μ_k (component means weighted
            by α, no sampling); "mode" — z = μ of the most likely component (argmax α).
        variational: True (the paper): z is sampled while training (Gumbel-softmax +
            reparameterisation). False: z is always the deterministic mean
            (``inference``) — with :meth:`plain_sigmoid` the ablation "same MLP, variational parts
            off".
        logit_noise: legacy ablation (only with ``mechanism="side"``): the decoder output is
            itself sampled in the reconstruction, logit = μ + σ·ε with the decoder's σ².
    Loss
        mechanism: what σ² is and how it acts on the label (module docstring of :mod:`vlmkit.vacsr`).
            "paper" (default; VACSR as written, §3.2 "Optimization of Uncertainty in Latent
            Variables") — σ² of a pair is the sigmoid-normalised variance of its latent
            components, reduced to one number as u = Σ_k w_k · mean_l σ²_{k,l} (w = α, or the
            one-hot argmax α with ``inference="mode"``; :func:`vlmkit.vacsr.adapter.latent_uncertainty`);
            reconstruction = unit-variance MSE through the sampled z (Eq. 8–9), so σ weights
            the label through the sampling; Eq. 10–12 train u; the decoder outputs the logit only.
            "hetero" (ablation ``vacsr-hetero``, the default until issue #19) — σ² is a second
            decoder output and the reconstruction is ½(ŷ − y)²/σ² + ½ log σ² on every pair.
            "side" (ablation ``vacsr-side``) — unit-variance MSE, σ² a second decoder output
            regressed beside the score by the variance loss only.
        recon_reduction: "batch" (default; SigLIP's normalisation: the sum over all
            B_v × B_t pairs ÷ B_t, the number of captions, so a caption's positive weighs as much
            as all its negatives' errors together), "mean" over all pairs (the previous
            default: every positive's pull is divided by ≈ B), or "sum". L_KL is always the
            mean over pairs (λ_KL is per pair, independent of B).
        prior_bias: the trainers set the decoder's logit bias to −log B_t at initialisation
            (SigLIP's prior for one positive among B), so training starts at the base rate
            instead of sigmoid(0) = ½ for every pair.
        lambda_kl, lambda_pos, lambda_neg: weights; 0 switches a term off.
        lambda_recon: weight of the reconstruction term (1; 0 switches it off, for ablations).
        hard_negatives: k, hardest negatives per query for the variance loss (target y = 1).
        hard_neg_dirs: queries whose hardest negatives are taken: "both" (image rows and
            caption columns, averaged), "i2t" (per image) or "t2i" (per caption).
        use_ste: straight-through estimator on the sigmoid in the reconstruction (Appendix B.1).
        var_eps: numerical floor added to σ² inside the variance loss (0 reproduces the
            paper's loss exactly; the default 1e-6 keeps it bounded below).
        recon_var_floor: floor added to σ² in the heteroscedastic reconstruction
            (``mechanism="hetero"``): the label weight 1/(σ² + floor) is at most 1/floor.
    """

    dim: int = 512
    enc_hidden: tuple[int, ...] = (256,)
    latent_dim: int = 64
    n_components: int = 2
    dec_hidden: tuple[int, ...] = (256,)
    activation: str = "relu"
    mixing: str = "per_pair"
    gumbel_tau: float = 1.0
    gumbel_hard: bool = False
    sigmoid_var: bool = True
    inference: str = "mean"
    variational: bool = True
    logit_noise: bool = False
    mechanism: str = "paper"
    lambda_recon: float = 1.0
    lambda_kl: float = 5e-4
    lambda_pos: float = 1.0
    lambda_neg: float = 1.0
    hard_negatives: int = 1
    hard_neg_dirs: str = "both"
    use_ste: bool = True
    recon_reduction: str = "batch"
    prior_bias: bool = True
    var_eps: float = 1e-6
    recon_var_floor: float = 0.05
    cosine_skip: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    #: fields whose values fix the shapes/meaning of the weights in a checkpoint
    ARCH_FIELDS = ("dim", "enc_hidden", "latent_dim", "n_components", "dec_hidden",
                   "activation", "mixing", "sigmoid_var", "cosine_skip", "mechanism")

    def __post_init__(self) -> None:
        self.enc_hidden = tuple(int(h) for h in self.enc_hidden)
        self.dec_hidden = tuple(int(h) for h in self.dec_hidden)
        self.validate()

    def validate(self) -> None:
        """Raise ``VlmkitError`` naming the first field with a bad value."""
        def bad(name: str, expected: str) -> None:
            raise VlmkitError(f"VACSRConfig.{name}={getattr(self, name)!r}: expected {expected}")

        if int(self.dim) < 1:
            bad("dim", "a positive feature dimension")
        if len(self.enc_hidden) < 1 or any(h < 1 for h in self.enc_hidden):
            bad("enc_hidden", "at least one positive hidden width (the first layer acts on v ⊙ t)")
        if any(h < 1 for h in self.dec_hidden):
            bad("dec_hidden", "positive hidden widths (or an empty tuple)")
        if self.latent_dim < 1:
            bad("latent_dim", "a positive integer")
        if self.n_components < 1:
            bad("n_components", "K ≥ 1 (the paper ablates 1–4)")
        if self.activation not in _ACTIVATIONS:
            bad("activation", f"one of {_ACTIVATIONS}")
        if self.mixing not in ("per_pair", "global"):
            bad("mixing", "'per_pair' or 'global'")
        if not self.gumbel_tau > 0:
            bad("gumbel_tau", "a positive temperature")
        if self.inference not in ("mean", "mode"):
            bad("inference", "'mean' (α-weighted component means) or 'mode' (most likely component)")
        if self.hard_negatives < 0:
            bad("hard_negatives", "k ≥ 0 hardest negatives per query")
        if self.hard_neg_dirs not in ("both", "i2t", "t2i"):
            bad("hard_neg_dirs", "'both', 'i2t' or 't2i'")
        if self.recon_reduction not in RECON_REDUCTIONS:
            bad("recon_reduction", f"one of {RECON_REDUCTIONS}")
        if self.mechanism not in MECHANISMS:
            bad("mechanism", f"one of {MECHANISMS} (what σ² is and how it weights the label)")
        if self.logit_noise and self.mechanism != "side":
            bad("logit_noise", "False unless mechanism='side' (a legacy ablation of the side regressor)")
        if not (float(self.cosine_skip) >= 0 and math.isfinite(float(self.cosine_skip))):
            bad("cosine_skip", "a finite number ≥ 0 (0 switches the skip path off)")
        for name in ("lambda_recon", "lambda_kl", "lambda_pos", "lambda_neg", "var_eps", "recon_var_floor"):
            if not float(getattr(self, name)) >= 0:
                bad(name, "a non-negative number")

    # ---- presets -------------------------------------------------------------------------
    @classmethod
    def paper_sized(cls, dim: int = 512, **overrides: Any) -> "VACSRConfig":
        """Two-hidden-layer encoder and decoder, width 1024, latent 512, K = 2.

        The paper gives only "two-layer MLPs" and 5.26 M extra parameters (Table 7); this
        choice has 5,253,124 parameters at d = 512 (the remaining ~7 K would be LayerNorms).
        """
        kw: dict[str, Any] = dict(dim=dim, enc_hidden=(1024, 1024), latent_dim=512,
                                  n_components=2, dec_hidden=(1024, 1024))
        kw.update(overrides)
        return cls(**kw)

    @classmethod
    def plain_sigmoid(cls, dim: int = 512, **overrides: Any) -> "VACSRConfig":
        """The same MLP with the variational parts off (issue #11's ablation): no sampling of z,
        no KL, no variance losses (the paper adapter's architecture, ``mechanism="paper"``). With the
        straight-through sigmoid the reconstruction's gradient at the logit is then ŷ − y, exactly
        the gradient of a plain sigmoid (binary cross-entropy) loss with SigLIP's 1/B_t
        reduction; its σ² (the latent variance) is untrained and carries no information.
        """
        kw: dict[str, Any] = dict(dim=dim, variational=False, mechanism="paper", lambda_kl=0.0,
                                  lambda_pos=0.0, lambda_neg=0.0, use_ste=True)
        kw.update(overrides)
        return cls(**kw)

    # ---- (de)serialisation -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["enc_hidden"] = list(self.enc_hidden)
        d["dec_hidden"] = list(self.dec_hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str = "config") -> "VACSRConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise VlmkitError(f"{source}: unknown VACSRConfig fields {unknown}; expected a subset of {sorted(names)}")
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @property
    def label(self) -> str:
        """The name this adapter is shown under: ``vacsr`` only for the paper's mechanism without
        the skip path; ablations carry their mechanism (``vacsr-hetero``) and ``+skip``; with the
        variational parts off it is ``plain-sigmoid-mlp`` (:meth:`plain_sigmoid`)."""
        if not self.variational:
            return "plain-sigmoid-mlp"
        return MECHANISM_LABELS[self.mechanism] + ("+skip" if self.cosine_skip > 0 else "")

    def arch_diff(self, other: "VACSRConfig") -> dict[str, tuple[Any, Any]]:
        """Architecture fields on which ``self`` and ``other`` differ: {name: (self, other)}."""
        return {n: (getattr(self, n), getattr(other, n)) for n in self.ARCH_FIELDS
                if getattr(self, n) != getattr(other, n)}
