"""VACSR: the variational adapter for cross-modal similarity (issue #5; DESIGN.md §4).

    from vlmkit.vacsr import VACSRConfig, train_on_features, score_all
    adapter, hist = train_on_features(img, txt, caption_image, VACSRConfig(dim=img.shape[1]))
    scores, uncertainty = score_all(adapter, img_test, txt_test)
"""

from vlmkit.vacsr.adapter import VACSRAdapter, VACSROutput, kl_upper_bound
from vlmkit.vacsr.checkpoint import load_adapter, save_adapter
from vlmkit.vacsr.config import VACSRConfig
from vlmkit.vacsr.evaluate import (auroc, false_negative_auroc, map_at_r, recall_at_1,
                                   uncertainty_accuracy)
from vlmkit.vacsr.losses import VACSRLoss, labels_from_ids, vacsr_loss, variance_loss
from vlmkit.vacsr.scoring import score_all, score_pairs_naive
from vlmkit.vacsr.train import train_on_features, validate

__all__ = [
    "VACSRAdapter", "VACSRConfig", "VACSRLoss", "VACSROutput", "auroc", "false_negative_auroc",
    "kl_upper_bound", "labels_from_ids", "load_adapter", "map_at_r", "recall_at_1", "save_adapter",
    "score_all", "score_pairs_naive", "train_on_features", "uncertainty_accuracy", "validate",
    "vacsr_loss", "variance_loss",
]
