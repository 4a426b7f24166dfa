"""VACSR: the variational adapter for cross-modal similarity (issue #5, #11; docs/design.md, "VACSR").

    from vlmkit.vacsr import VACSRConfig, train_on_features, score_all, fig3_report
    adapter, hist = train_on_features(img, txt, caption_image, VACSRConfig(dim=img.shape[1]))
    scores, uncertainty = score_all(adapter, img_test, txt_test)
    report = fig3_report(scores, uncertainty, labels, truth)   # Fig. 3 / App. H, with the control

What σ² is and how it acts on the label (``VACSRConfig.mechanism``), read against the paper
(``shared/seeds/vacsr-paper.txt``):

- **"paper" (default; shown as ``vacsr``)** — §3.2 "Optimization of Uncertainty in Latent
  Variables": "We address this issue by managing the uncertainty of the latent variable." σ² of
  a pair is the sigmoid-normalised variance of its latent components, reduced to one number
  u = Σ_k α_k · mean_l σ²_{k,l} (:func:`~vlmkit.vacsr.adapter.latent_uncertainty`, why in the
  adapter's docstring). The reconstruction is the unit-variance MSE on ŷ = sigmoid(decoder(z))
  (Eq. 8, "the variance is typically fixed to 1") with the straight-through estimator (App. B.1,
  gradient ŷ − y at the logit), z sampled by Gumbel-softmax + reparameterisation z = μ + σ ε
  (Eq. 9): σ weights the label only through the sampling ("we can control the optimization
  strength of the binary annotations by adjusting σ"). Eq. 10–12 train u towards (ŷ − y)² on
  positives and the k hardest negatives (both y = 1); the KL upper bound (Eq. 7) on the
  components; inference decodes from the means (no sampling). The decoder has no variance output.
  Caveat, measured in tests/test_vacsr_mechanism.py: with the STE the label's pull on μ is
  −y·E_ε[∂logit/∂z], the Gaussian-smoothed slope of the decoder, so it shrinks with σ where
  the decoder's response is local/saturating, not for a decoder linear in z; and with the
  sigmoid σ² ≤ 1, so the σ → ∞ limit of §3.2 is never reached.
- **"hetero"** (ablation, ``vacsr-hetero``; the default before issue #19): σ² a second decoder
  output, ½(ŷ − y)²/σ² + ½ log σ² on every pair. σ² then learns ŷ² on all negatives and ends a
  monotone function of the score (Spearman 1.000 measured; Fig. 3 with the opposite sign).
- **"side"** (ablation, ``vacsr-side``): unit-variance MSE, σ² a decoder output regressed beside
  the score by the distributional loss only.

Imbalance: one positive per caption against B − 1 negatives. ``recon_reduction="batch"``
(default) sums the per-pair terms and divides by the batch's captions (SigLIP's 1/|B|), the
KL is reduced the same way (per pair it is the ELBO's), and ``prior_bias`` starts the logit
bias at −log B (SigLIP). λ_KL = 5e-4 (the paper's) kept: on the synthetic false-negative data
λ_KL ∈ {0, 5e-4, 5e-3, 5e-2} changed mAP@R by < 0.005 under this reduction.

Scoring (:func:`score_all`) runs the last layer in float32, so bf16 scoring keeps the fp32
ranking. The cosine skip path (``cosine_skip`` > 0) is vlmkit's addition: label it
``vacsr+skip`` wherever it is shown, never plain VACSR.
"""

from vlmkit.vacsr.adapter import VACSRAdapter, VACSROutput, kl_upper_bound, latent_uncertainty
from vlmkit.vacsr.checkpoint import load_adapter, save_adapter
from vlmkit.vacsr.config import VACSRConfig
from vlmkit.vacsr.fig3 import fig3_report
from vlmkit.vacsr.evaluate import (auroc, false_negative_auroc, map_at_r, recall_at_1,
                                   uncertainty_accuracy)
from vlmkit.vacsr.losses import VACSRLoss, labels_from_ids, vacsr_loss, variance_loss
from vlmkit.vacsr.scoring import score_all, score_pairs_naive
from vlmkit.vacsr.train import train_on_features, validate

__all__ = [
    "VACSRAdapter", "VACSRConfig", "VACSRLoss", "VACSROutput", "auroc", "false_negative_auroc", "fig3_report",
    "kl_upper_bound", "labels_from_ids", "latent_uncertainty", "load_adapter", "map_at_r", "recall_at_1",
    "save_adapter", "score_all", "score_pairs_naive", "train_on_features", "uncertainty_accuracy", "validate",
    "vacsr_loss", "variance_loss",
]
