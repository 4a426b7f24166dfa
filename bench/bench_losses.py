"""Step time of geodesic mixup (all four terms) vs plain contrastive: full model step and loss only.

Full step = encode a batch of images and captions with an open_clip model (random weights,
eval mode as in the authors' runs), loss, backward, AdamW step. Loss only = forward+backward
of the loss on fixed leaf features of the same shape. The methods are interleaved step by
step so that load from other processes hits both alike; medians are reported.

    VLMKIT_NO_PROGRESS=1 .venv/bin/python bench/bench_losses.py --device cpu
    .venv/bin/python bench/bench_losses.py --model RN50 --image-size 224   # an open_clip name

Target (issue #4): full step of "all" ≤ 1.15 × full step of "contrastive".
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vlmkit.utils import atomic_write_json, resolve_device, set_offline_hub  # noqa: E402

set_offline_hub()  # before open_clip imports huggingface_hub

import open_clip  # noqa: E402
import torch  # noqa: E402

from vlmkit.losses import make_loss  # noqa: E402

CONFIG_DIR = Path(__file__).resolve().parents[1] / "vlmkit" / "models" / "configs"


def build_model(name: str, device: torch.device) -> tuple[torch.nn.Module, int, int]:
    """A randomly initialised open_clip model: a vlmkit config name or an open_clip model name."""
    cfg_path = CONFIG_DIR / f"{name}.json"
    if cfg_path.exists():
        cfg = json.loads(cfg_path.read_text())
        model = open_clip.model.CLIP(**cfg)
        image_size, ctx = cfg["vision_cfg"]["image_size"], cfg["text_cfg"]["context_length"]
    else:
        model = open_clip.create_model(name, pretrained=None)
        image_size, ctx = model.visual.image_size, model.context_length
        image_size = image_size[0] if isinstance(image_size, (tuple, list)) else image_size
    return model.to(device).eval(), int(image_size), int(ctx)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="vlmkit-small", help="vlmkit config name or open_clip model name")
    p.add_argument("--image-size", type=int, default=None, help="override the input size (open_clip models)")
    p.add_argument("--batch", type=int, default=128, help="batch size (authors: 128)")
    p.add_argument("--steps", type=int, default=15, help="timed steps per method")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--loss-batches", type=int, nargs="*", default=[128, 1024, 4096])
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = p.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    model, image_size, ctx = build_model(args.model, device)
    image_size = args.image_size or image_size
    params = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.2)
    images = torch.randn(args.batch, 3, image_size, image_size, device=device)
    tokens = torch.randint(1, 49407, (args.batch, ctx), device=device)
    methods = {m: make_loss(m) for m in ("contrastive", "all")}
    gens = {m: torch.Generator().manual_seed(0) for m in methods}

    def full_step(m: str) -> float:
        sync(device)
        t0 = time.perf_counter()
        img = model.encode_image(images)
        txt = model.encode_text(tokens)
        loss = methods[m](img, txt, generator=gens[m], epoch=0).total
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync(device)
        return time.perf_counter() - t0

    times: dict[str, list[float]] = {m: [] for m in methods}
    for i in range(args.warmup + args.steps):
        for m in methods if i % 2 == 0 else reversed(list(methods)):
            dt = full_step(m)
            if i >= args.warmup:
                times[m].append(dt)
    full = {m: statistics.median(v) for m, v in times.items()}

    dim = img_dim = model.encode_text(tokens[:2]).shape[-1]
    loss_only: dict[int, dict[str, float]] = {}
    for n in args.loss_batches:
        feats = [torch.randn(n, img_dim, device=device).requires_grad_() for _ in range(2)]
        lt: dict[str, list[float]] = {m: [] for m in methods}
        reps = max(5, min(50, int(2e6 // (n * n)) + 5))
        for i in range(3 + reps):
            for m in methods:
                sync(device)
                t0 = time.perf_counter()
                methods[m](*feats, generator=gens[m]).total.backward()
                sync(device)
                if i >= 3:
                    lt[m].append(time.perf_counter() - t0)
        loss_only[n] = {m: statistics.median(v) for m, v in lt.items()}

    result = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "model": args.model,
        "image_size": image_size,
        "embed_dim": dim,
        "batch": args.batch,
        "steps": args.steps,
        "full_step_s": full,
        "full_step_ratio": full["all"] / full["contrastive"],
        "loss_only_s": {str(n): v for n, v in loss_only.items()},
        "loss_only_ratio": {str(n): v["all"] / v["contrastive"] for n, v in loss_only.items()},
    }
    print(f"{args.model} @ {image_size}px, batch {args.batch}, {device} ({result['threads']} threads)")
    print(f"full step  contrastive {full['contrastive'] * 1e3:8.1f} ms   all-four {full['all'] * 1e3:8.1f} ms"
          f"   ratio {result['full_step_ratio']:.3f}")
    for n, v in loss_only.items():
        print(f"loss only N={n:<5d} contrastive {v['contrastive'] * 1e3:8.2f} ms   all-four {v['all'] * 1e3:8.2f} ms"
              f"   ratio {v['all'] / v['contrastive']:.2f}")
    if args.out:
        atomic_write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
