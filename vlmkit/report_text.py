"""The words and the style of the report (:mod:`vlmkit.report`): its sections, the narrative of
each (what the figures show, what to look for) and the inline CSS (no external resources)."""

from __future__ import annotations

SECTIONS: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    # (anchor, title, figure-name prefixes, table-name glob patterns)
    ("primer", "Primer: where the modality gap comes from", ("00_",), ("primer_cones",)),
    ("data", "The data and its false negatives", ("01_",), ("census", "noise_census")),
    ("retrieval", "Zero-shot vs fine-tuned retrieval", ("02_", "08_"),
     ("summary", "retrieval", "methods", "history_*")),
    ("gap", "The modality gap", ("03_",), ("gap", "gap_shift")),
    ("mixed", "Mixed retrievals along the geodesic", ("04_",), ("slerp_path", "hardness")),
    ("uncertainty", "Uncertainty: VACSR Fig. 3 and the −score control", ("05_",),
     ("uncertainty", "fig3_summary_*", "query_topk")),
    ("histograms", "Similarity histograms", ("06_",), ("similarity_by_type",)),
    ("reliability", "Reliability", ("07_",), ("calibration",)),
)

TABLE_TITLES: dict[str, str] = {
    "summary": "Summary per method", "retrieval": "Retrieval per protocol, direction and metric",
    "methods": "Methods of this run",
    "census": "False-negative census", "noise_census": "Noisy training split: moved vs truly mismatched captions",
    "primer_cones": "Cones of a random-init encoder", "gap": "Modality gap per method",
    "gap_shift": "Shifting the clouds along the gap", "slerp_path": "Nearest items along the slerp path",
    "hardness": "Original vs mixed negatives", "uncertainty": "Uncertainty vs R@1 (Fig. 3) and FN-vs-TN AUROC",
    "query_topk": "Query picker: one query's top-K", "similarity_by_type": "Mean score per pair type",
    "calibration": "Calibration (ECE) per method and direction",
}
"""Headings of the report's tables (``tables/<name>.csv``); others are headed by their name."""

NARRATIVE: dict[str, str] = {
    "primer": (
        "A teaching warm-up on free embeddings and a randomly initialised encoder. Even before any training, "
        "images and captions land in two narrow cones of the unit sphere; contrastive training at a low "
        "temperature τ keeps the two cones apart. Look for how the gap grows as τ falls, and for the shift "
        "experiment: moving one cloud along the gap vector changes the loss but hardly the ranking."),
    "data": (
        "The evaluation split: test images with the captions written for them, coloured by specificity "
        "(green = full scene, red = gist). One-to-one labels call a caption positive only for the image it was "
        "written for; the census counts the pairs that are true all the same but labelled negative — the false "
        "negatives binary labels create. Look for how many captions are true of other images and at which "
        "specificity they concentrate: gist captions are true of many images, full-scene captions of a few. "
        "Real data without extended positives has no census. The second table counts the training split's noisy "
        "correspondence: captions moved to another image, and of those the ones whose text is truly not true of "
        "their new image (a moved gist caption can still fit)."),
    "retrieval": (
        "Retrieval by every method of the run on the test split: <i>pretrained</i> is the zero-shot model, the "
        "other rows were fine-tuned on the training split (02: clean for the fine-tunings, as the m²-Mix authors; "
        "20 % noisy for VACSR) or re-scored by VACSR. R@K counts a hit when "
        "a labelled match is in the top K (COCO protocol on the full N×M split; 'coco5k' only at 5,000 images); "
        "mAP@R and R-P rank against the dataset's truth (ECCV Caption style) and so credit true-but-unlabelled "
        "items that R@K counts as errors. Look for whether fine-tuning gains over zero-shot in both directions, "
        "and whether R@1 and mAP@R move together: learning the labels' false negatives can raise R@1 and lower mAP@R."),
    "gap": (
        "The modality gap: image and text embeddings of one model occupy separate cones. The bars give the "
        "distance ‖Δ‖ between the two centroids per method; the projections show both clouds with lines between "
        "paired items; the shift experiment moves the clouds along Δ and records gap, R@1 and the contrastive loss. "
        "Look for whether fine-tuning — m²-Mix above all, which mixes across modalities — narrows the gap, and "
        "whether a smaller gap comes with better retrieval: the m²-Mix paper attributes the gains to uniformity "
        "and alignment rather than to the gap itself."),
    "mixed": (
        "Geodesic mixes m = slerp(v, t; λ) of an image v and its caption t, from λ = 0 (the caption) to λ = 1 "
        "(the image), and the gallery items nearest to each mix, marked relevant when true for the query pair. "
        "Look for where along the path the neighbours switch from captions to images — with a wide gap the switch "
        "is abrupt — and whether they stay relevant. The hardness table compares negatives: mixed negatives that "
        "lie closer to the anchor image than the original ones are the hard negatives m²-Mix trains on."),
    "uncertainty": (
        "VACSR scores each pair through a latent Gaussian mixture and reports as uncertainty σ² the variance of the "
        "pair's latent components (sigmoid-normalised, averaged over the latent dimensions, weighted by the mixing "
        "weights) — the paper's §3.2, not a second output of the decoder (that reading is the ablation "
        "vacsr-hetero, shown under its own name). The paper's Fig. 3: per query the σ² of its top-1 pair, 10 "
        "equal-width bins, R@1 per bin under one-to-one labels, and the Pearson r of bin R@1 against bin σ² "
        "(paper: −0.931 i→t, −0.903 t→i). The control repeats this with −score as the uncertainty: σ² carries "
        "information only where it beats the control. The same bins with correctness under the dataset's truth "
        "follow, then the AUROC of σ² separating false from true negatives beside the AUROC of the score itself "
        "(the score alone already ranks most false negatives above true negatives), and σ²'s range and histogram "
        "per pair type. Look for a negative r at least as strong as the control's, an FN AUROC of σ² above the "
        "score's, and a σ² range wide enough to mean something. Eq. 12 trains the hardest negatives — often the "
        "false negatives — towards low σ², so the faithful σ² need not rank false negatives high. The query picker "
        "lists one query's top-K with score, σ², label and truth."),
    "histograms": (
        "Scores of all test pairs per method, split by pair type: labelled positives, false negatives (true but "
        "labelled negative) and true negatives. Look for where the false negatives sit — near the positives, where "
        "the model knows they are true and one-to-one labels penalise it, or among the negatives — and for the "
        "overlap of positives and true negatives, which bounds what any threshold can separate. Fine-tuning on "
        "one-to-one labels tends to push the false negatives down."),
    "reliability": (
        "Reliability diagrams of top-1 retrieval, first under the m²-Mix authors' protocol (their Table 3): "
        "one caption "
        "per image, a square N×N similarity, the softmax of S/τ over the N candidates at the model's own learned τ, "
        "confidence = the top-1 probability, correct = the diagonal item (the table's ece_authors). Then the gallery "
        "view: every caption in the gallery, correct = the labelled match and correct = true under the dataset's truth "
        "(ece_labels, ece_truth). ECE (in %) is the bin-weighted gap to the diagonal over 15 equal-width bins; under "
        "each diagram the histogram of confidences shows which range the model actually uses. Look for bars below "
        "the diagonal (over-confidence) or above it (under-confidence), and for the difference between the labels "
        "and truth ECEs: a model that is confident about true-but-unlabelled matches looks miscalibrated under the "
        "labels alone."),
}

CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:26px;margin:0 0 8px}h2{font-size:20px;border-bottom:2px solid #dfe7f2;padding-bottom:4px;margin-top:36px}
h3{font-size:15px;margin:18px 0 4px;color:#34495e}h3 small{font-weight:normal;color:#888;font-size:12px}
nav{margin:12px 0;font-size:13px}nav a{color:#2c5d8f;text-decoration:none}
.rule{font-size:13px;color:#555;background:#f6f8fa;padding:6px 10px;border-left:3px solid #9ab}
.narrative{max-width:80ch}.protocol{font-size:13px;color:#444;margin:4px 0}.more,.missing{font-size:13px;color:#8a5a00}
table{border-collapse:collapse;font-size:13px;margin:4px 0 12px;display:block;overflow-x:auto;max-width:100%}
th,td{border-bottom:1px solid #e3e6ea;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#eef2f7;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tbody tr:nth-child(even){background:#fafbfc}
figure{margin:12px 0 20px}img.fig{max-width:100%;border:1px solid #e3e6ea}figcaption{font-size:12px;color:#666}
.panel{margin:10px 0;overflow-x:auto}code{background:#f3f3f3;padding:0 3px}
"""  # noqa: E501 (a line of the CSS text: wrapping it would change the string)
