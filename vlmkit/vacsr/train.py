"""Training the VACSR adapter on cached, frozen features (issue #5 item 2a: the cheap path).

A batch is B captions drawn without replacement, each with its labelled image
(``caption_image[j]``); the images are de-duplicated, so the batch is a (B_v ≤ B) × B grid with
y_ij = 1 iff caption j is labelled with image i (several 1s per row when captions share an
image — not just the diagonal). Loss: :func:`vlmkit.vacsr.losses.vacsr_loss`.

Optimiser: AdamW (the paper's AdamP is not a dependency), learning rate ×0.1 after
``lr_step_frac`` of the epochs (paper: 25 epochs, ×0.1 at epoch 15 → 0.6).
Reproducible and resumable: epoch e's caption order and its sampling noise come from
generators seeded with (seed, e), and ``checkpoint_dir/train_state.pt`` (one atomic file:
adapter, optimiser, history) is written after every epoch, so ``resume=True`` after an
interruption gives the same adapter as an uninterrupted run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor

from vlmkit.schedule import step_decay
from vlmkit.utils import VlmkitError, atomic_torch_save, progress, resolve_device, seed_everything
from vlmkit.vacsr.adapter import VACSRAdapter
from vlmkit.vacsr.config import VACSRConfig
from vlmkit.vacsr.evaluate import map_at_r, recall_at_1
from vlmkit.vacsr.losses import vacsr_loss
from vlmkit.vacsr.scoring import score_all

STATE = "train_state.pt"


def _check_caption_image(caption_image: Tensor, n_images: int, n_captions: int, name: str) -> Tensor:
    ci = torch.as_tensor(caption_image)
    if ci.dim() != 1 or ci.shape[0] != n_captions:
        raise VlmkitError(f"{name}: expected one image index per caption, shape ({n_captions},), got {tuple(ci.shape)}")
    if ci.is_floating_point() or ci.dtype == torch.bool:
        raise VlmkitError(f"{name}: expected integer image indices, got {ci.dtype}")
    if ci.numel() and (int(ci.min()) < 0 or int(ci.max()) >= n_images):
        raise VlmkitError(f"{name}: image indices must lie in [0, {n_images}), got [{int(ci.min())}, {int(ci.max())}]")
    return ci.long()


def _unpack_val(val: Any) -> tuple[Tensor, Tensor, Tensor]:
    if isinstance(val, dict):
        return val["img_feats"], val["txt_feats"], val["relevance"]
    if isinstance(val, Sequence) and len(val) == 3:
        return val[0], val[1], val[2]
    raise VlmkitError("val: expected (img_feats, txt_feats, relevance) or a dict with those keys; "
                      "relevance is a (N_val, M_val) bool matrix (binary or extended positives)")


def validate(adapter: VACSRAdapter, img: Tensor, txt: Tensor, relevance: Tensor,
             device: str | torch.device = "cpu") -> dict[str, float]:
    """mAP@R and R@1 in both directions of the adapter's exact deterministic scores."""
    scores, _ = score_all(adapter, img, txt, device=device, show_progress=False)
    return {"map_at_r_i2t": map_at_r(scores, relevance, "i2t"), "map_at_r_t2i": map_at_r(scores, relevance, "t2i"),
            "r1_i2t": recall_at_1(scores, relevance, "i2t"), "r1_t2i": recall_at_1(scores, relevance, "t2i")}


def train_on_features(img_feats: Tensor, txt_feats: Tensor, caption_image: Tensor,
                      config: VACSRConfig | None = None, epochs: int = 10, batch_size: int = 256,
                      lr: float = 1e-3, seed: int = 0, device: str | torch.device = "auto",
                      val: Any = None, *, weight_decay: float = 1e-4, lr_step_frac: float = 0.6,
                      checkpoint_dir: str | Path | None = None, resume: bool = False,
                      show_progress: bool = True) -> tuple[VACSRAdapter, list[dict[str, float]]]:
    """Train an adapter on frozen features; returns (adapter in eval mode, per-epoch history).

    img_feats (N, d), txt_feats (M, d): features as the encoder produced them (the adapter sees
    exactly these; score with the same features). caption_image (M,): labelled image of each
    caption. val: optional (img_feats, txt_feats, relevance) evaluated after every epoch.
    """
    config = config or VACSRConfig(dim=int(img_feats.shape[-1]))
    if epochs < 0 or batch_size < 2 or not lr > 0:
        raise VlmkitError(f"epochs={epochs}, batch_size={batch_size}, lr={lr}: expected epochs ≥ 0, "
                          "batch_size ≥ 2 and lr > 0")
    dev = resolve_device(device)
    seed_everything(seed)
    adapter = VACSRAdapter(config)
    if config.prior_bias:
        adapter.init_prior_bias(batch_size)
    adapter.check_features(img_feats, "img_feats")
    adapter.check_features(txt_feats, "txt_feats")
    ci = _check_caption_image(caption_image, img_feats.shape[0], txt_feats.shape[0], "caption_image")
    if val is not None:
        vimg, vtxt, vrel = _unpack_val(val)
        adapter.check_features(vimg, "val img_feats")
        adapter.check_features(vtxt, "val txt_feats")
        if tuple(vrel.shape) != (vimg.shape[0], vtxt.shape[0]):
            raise VlmkitError(f"val relevance: expected shape ({vimg.shape[0]}, {vtxt.shape[0]}), "
                              f"got {tuple(vrel.shape)}")
    adapter.to(dev)
    opt = torch.optim.AdamW(adapter.parameters(), lr=lr, weight_decay=weight_decay)
    history: list[dict[str, float]] = []
    start = 0
    state_path = Path(checkpoint_dir) / STATE if checkpoint_dir is not None else None
    if resume and state_path is not None and state_path.is_file():
        st = torch.load(state_path, map_location="cpu", weights_only=False)
        if st.get("config") != config.to_dict():
            theirs = VACSRConfig.from_dict(st["config"], source=str(state_path)).to_dict()
            diff = sorted(k for k in theirs if theirs[k] != config.to_dict()[k])
            raise VlmkitError(f"{state_path}: was written with another VACSRConfig (fields {diff} differ); "
                              "use the same config to resume or another checkpoint_dir")
        if st.get("seed") != seed:
            raise VlmkitError(f"{state_path}: was written with seed={st.get('seed')}, resuming with seed={seed}")
        adapter.load_state_dict(st["adapter"])
        opt.load_state_dict(st["optimizer"])
        history, start = st["history"], st["epoch"]

    img = img_feats.to(dev, torch.float32)
    txt = txt_feats.to(dev, torch.float32)
    ci_dev = ci.to(dev)
    M = txt.shape[0]
    step_epoch = int(round(lr_step_frac * epochs))
    n_batches = (M + batch_size - 1) // batch_size
    bar = progress(total=max(0, epochs - start) * n_batches, desc="VACSR train") if show_progress else None
    for group in opt.param_groups:
        group.setdefault("initial_lr", lr)
    sched = step_decay(opt, step_epoch, 0.1, last_step=start - 1)  # stepped once per epoch
    for epoch in range(start, epochs):
        adapter.train()
        g_perm = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        g_noise = torch.Generator(device=dev).manual_seed(seed * 1_000_003 + epoch + 7_919)
        perm = torch.randperm(M, generator=g_perm).to(dev)
        sums: dict[str, float] = {}
        for b in range(n_batches):
            cap = perm[b * batch_size:(b + 1) * batch_size]
            ids = ci_dev[cap]
            uniq = torch.unique(ids)
            labels = uniq.unsqueeze(1) == ids.unsqueeze(0)
            out = adapter(img[uniq], txt[cap], sample=True, generator=g_noise, check=False)
            loss, terms = vacsr_loss(out, labels, config)
            if not bool(torch.isfinite(loss)):
                raise VlmkitError(f"VACSR training diverged at epoch {epoch}, batch {b} (loss {float(loss.detach())}); "
                                  f"lower lr={lr}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            if bar is not None:
                bar.update(1)
                bar.set_postfix(epoch=epoch, loss=f"{float(loss.detach()):.4f}", refresh=False)
        sched.step()
        rec: dict[str, float] = {"epoch": epoch, **{k: v / n_batches for k, v in sums.items()}}
        if val is not None:
            adapter.eval()
            rec.update(validate(adapter, vimg, vtxt, vrel, device=dev))
        history.append(rec)
        if state_path is not None:
            atomic_torch_save({"adapter": {k: v.cpu() for k, v in adapter.state_dict().items()},
                               "optimizer": opt.state_dict(), "history": history, "epoch": epoch + 1,
                               "config": config.to_dict(), "seed": seed}, state_path)
    if bar is not None:
        bar.close()
    adapter.eval()
    return adapter, history
