"""VACSR: the variational adapter for cross-modal similarity (issue #5, #11; docs/design.md, "VACSR").

    from vlmkit.vacsr import VACSRConfig, train_on_features, score_all, fig3_report
    adapter, hist = train_on_features(img, txt, caption_image, VACSRConfig(dim=img.shape[1]))
    scores, uncertainty = score_all(adapter, img_test, txt_test)
    report = fig3_report(scores, uncertainty, labels, truth)   # Fig. 3 / App. H, with the control

How σ² acts on the label (``VACSRConfig.mechanism``), read against the paper
(``shared/seeds/vacsr-paper.txt``):

- The paper says σ is the point: "uncertainty-aware adaptive weighting of different image-text
  pairs" (§2), "we can control the optimization strength of the binary annotations by adjusting
  σ" (§3.2); as σ → 0 the pair "optimizes towards binary results", as σ → ∞ "[the label] no
  longer influences the gradient". Its reconstruction (Eq. 8) is the Gaussian NLL
  1/(2σ²)·‖ŷ − μ‖² + log σ + ½ log 2π, with σ² "typically fixed to 1" in a plain VAE, and the
  distributional loss (Eq. 10) has the same form with the error stop-gradiented.
- **"hetero" (default)** is Eq. 8 with σ² learned: ½(ŷ − y)²/σ² + ½ log σ² on every pair
  (σ² + ``recon_var_floor``). The label's gradient at the logit is (ŷ − y)/σ², so both limits
  of §3.2 hold exactly (σ² → 0: full pull of the label; σ² → ∞: none), and σ² learns
  (ŷ − y)² from every pair, which is what gives false negatives (label 0, high score) high σ².
  The distributional losses on positives and hardest negatives (target 1, Eq. 10–12) act on the
  same σ².
- Eq. 9's reading — the decoded similarity sampled with the σ of the sampled latent components,
  one reparameterised sample — is *not* implemented as a switch: with the straight-through
  estimator of App. B.1 the expected label gradient of a sampled similarity is E[ŷ] − y, which
  does not weaken as σ grows (only its signal-to-noise ratio does), and with σ² ≤ 1 (the
  paper's sigmoid) the noise is small against logits of a few units. The adapter does sample z
  with the components' σ_k in training (§3.1), as before.
- **"side"** (ablation, the previous behaviour): unit-variance MSE, σ² regressed beside the
  score by the distributional loss only; σ² then never weights the label and ends up a
  monotone function of the score.

Imbalance: one positive per caption against B − 1 negatives. ``recon_reduction="batch"``
(default) sums the per-pair terms and divides by the batch's captions (SigLIP's 1/|B|), the
KL is reduced the same way (per pair it is the ELBO's), and ``prior_bias`` starts the logit
bias at −log B (SigLIP). λ_KL = 5e-4 (the paper's) kept: on the synthetic false-negative data
λ_KL ∈ {0, 5e-4, 5e-3, 5e-2} changed mAP@R by < 0.005 under this reduction.

Scoring (:func:`score_all`) runs the last layer in float32, so bf16 scoring keeps the fp32
ranking. The cosine skip path (``cosine_skip`` > 0) is vlmkit's addition: label it
``vacsr+skip`` wherever it is shown, never plain VACSR.
"""

from vlmkit.vacsr.adapter import VACSRAdapter, VACSROutput, kl_upper_bound
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
    "kl_upper_bound", "labels_from_ids", "load_adapter", "map_at_r", "recall_at_1", "save_adapter",
    "score_all", "score_pairs_naive", "train_on_features", "uncertainty_accuracy", "validate",
    "vacsr_loss", "variance_loss",
]
