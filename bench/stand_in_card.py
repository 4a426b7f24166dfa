"""Zero-shot card of a stand-in checkpoint (data/README.md's table): R@1/5/10, MedR, ECE and
RSUM under one-to-one labels
(``full 1000x5000``), R@1 / mAP@R / R-P under the exact truth (ECCV-style extended positives), the
modality gap and the model's τ, on the default test split (coco preset, seed 0) and the stress preset.

    python bench/stand_in_card.py                                  # the shipped stand-in
    python bench/stand_in_card.py --pretrained stand-in-base       # its first stage, or a directory

Prints one JSON object per preset.
"""

from __future__ import annotations

import argparse
import json

from vlmkit.data.shapes import make_shapes
from vlmkit.features import encode_dataset
from vlmkit.metrics import evaluate_similarity, modality_gap
from vlmkit.models import learned_temperature, load_model


def card(loaded, preset: str) -> dict:
    test = make_shapes("test", preset=preset)
    f = encode_dataset(loaded, test, cache_dir=None)
    t = evaluate_similarity(f.images @ f.texts.T, test.caption_image, positives=test, protocols=("coco5k", "eccv"))
    out = {"preset": preset, "pretrained": str(loaded.pretrained), "tau": round(learned_temperature(loaded), 4),
           "gap": round(float(modality_gap(f.images, f.texts).distance), 4)}
    for row in t.to_dict("records"):
        out[f"{row['protocol']} {row['direction']} {row['metric']}"] = round(float(row["value"]), 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pretrained", default="stand-in")
    ap.add_argument("--presets", default="coco,stress")
    args = ap.parse_args()
    loaded = load_model(pretrained=args.pretrained, device="cpu")
    loaded.model.float().eval()
    for preset in args.presets.split(","):
        print(json.dumps(card(loaded, preset)), flush=True)


if __name__ == "__main__":
    main()
