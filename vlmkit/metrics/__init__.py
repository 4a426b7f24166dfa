"""Evaluation: retrieval (COCO 5K/1K, RSUM), ECCV-style ranking, calibration, geometry,
uncertainty, false-negative census and classification-as-retrieval — all in row blocks.

Conventions (see each module for definitions and the library each metric is checked against):

* ``sims[i, j]`` = image ``i`` vs caption ``j`` (N × M); text→image uses ``Scores.T``.
* One tie rule everywhere — **pessimistic**: a negative tied with a positive ranks above it
  (:mod:`vlmkit.metrics.core`).
* Scores must be finite; bad shapes, ids and queries without positives raise
  :class:`vlmkit.utils.VlmkitError` unless a documented option (``empty="skip"``) says otherwise.
"""

from .calibration import (AUTHORS_PROTOCOL, GALLERY_PROTOCOL, authors_calibration, expected_calibration_error,
                          reliability_bins, retrieval_calibration)
from .census import caption_census, false_negative_census, false_negative_counts, noise_census
from .classification import (
    class_prototypes,
    classification_logits,
    classification_metrics,
    classification_metrics_from_logits,
    harmonic_mean,
    true_class_rank,
)
from .core import QueryStats, scan
from .evaluate import evaluate_retrieval, evaluate_similarity, results_wide
from .geometry import ModalityGap, alignment, modality_gap, relative_alignment, uniformity
from .positives import Positives
from .ranking import ranking_metrics
from .retrieval import (bidirectional_recall, coco_recall, fold_indices, protocol_name, recall_at_k, recall_from_ranks,
                        rsum)
from .scores import Scores, similarity_matrix
from .uncertainty import (auroc, false_negative_auroc, false_negative_auroc_with_control, top1_uncertainty,
                          uncertainty_bins, uncertainty_by_pair_type, uncertainty_correlation)

__all__ = [
    "Scores", "similarity_matrix", "Positives", "QueryStats", "scan",
    "recall_at_k", "recall_from_ranks", "bidirectional_recall", "coco_recall", "fold_indices", "protocol_name", "rsum",
    "ranking_metrics",
    "AUTHORS_PROTOCOL", "GALLERY_PROTOCOL", "authors_calibration", "expected_calibration_error", "reliability_bins",
    "retrieval_calibration",
    "uniformity", "alignment", "relative_alignment", "modality_gap", "ModalityGap",
    "top1_uncertainty", "uncertainty_bins", "uncertainty_correlation", "false_negative_auroc", "auroc",
    "false_negative_auroc_with_control", "uncertainty_by_pair_type",
    "false_negative_census", "false_negative_counts", "caption_census", "noise_census",
    "class_prototypes", "classification_logits", "classification_metrics", "classification_metrics_from_logits",
    "harmonic_mean", "true_class_rank",
    "evaluate_retrieval", "evaluate_similarity", "results_wide",
]
