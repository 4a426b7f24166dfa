"""One call to get a CLIP-style model: :func:`load_model`.

``load_model(name, pretrained)`` returns a :class:`LoadedModel` (model, preprocessing,
tokenizer) for

* an open_clip architecture name (``"ViT-B-32"``, ``"RN50"``, …) or a bundled vlmkit
  config (``"vlmkit-tiny"``, ``"vlmkit-small"``: tiny CLIPs sized for a CPU);
* ``pretrained`` = ``None`` (random weights), an open_clip tag (``"openai"``,
  ``"laion2b_s34b_b79k"``, …) whose weights are in the local cache, a local ``.pt`` /
  ``.pth`` / ``.bin`` / ``.safetensors`` file, or a directory written by
  :func:`save_model` (open_clip's ``local-dir`` layout: ``open_clip_config.json`` +
  ``open_clip_model.safetensors``).

Offline, a tag whose weights are not cached fails at once (no minute of retries) with a
message saying how to pass a local checkpoint; set ``allow_download=True`` (or
``VLMKIT_ALLOW_DOWNLOAD=1``) on a machine with network to fetch them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..utils import VlmkitError, atomic_path, atomic_write_json, resolve_device, set_offline_hub

set_offline_hub()  # before open_clip imports huggingface_hub

import open_clip  # noqa: E402
import torch  # noqa: E402

CONFIG_DIR = Path(__file__).parent / "configs"
BUNDLED = sorted(p.stem for p in CONFIG_DIR.glob("*.json"))
open_clip.add_model_config(CONFIG_DIR)

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")
WEIGHTS_NAME = "open_clip_model.safetensors"
CONFIG_NAME = "open_clip_config.json"


@dataclass
class LoadedModel:
    """A model with everything needed to encode data, and where it came from."""

    model: torch.nn.Module
    preprocess: Callable  # eval-time image transform (PIL → tensor)
    tokenizer: Callable  # list[str] → LongTensor (B, context_length)
    name: str
    pretrained: str | None
    model_cfg: dict
    preprocess_cfg: dict = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def image_size(self) -> int:
        size = self.preprocess_cfg.get("size", self.model_cfg["vision_cfg"].get("image_size", 224))
        return int(size[0] if isinstance(size, (list, tuple)) else size)

    @property
    def embed_dim(self) -> int:
        return int(self.model_cfg["embed_dim"])

    def describe(self) -> dict:
        """JSON-able identity: what a cache key or a run record needs."""
        return {"name": self.name, "pretrained": self.pretrained, "model_cfg": self.model_cfg, "preprocess_cfg": self.preprocess_cfg}


def list_models() -> list[str]:
    """Bundled vlmkit configs first, then open_clip's architectures."""
    return BUNDLED + [m for m in open_clip.list_models() if m not in BUNDLED]


def load_model(
    name: str = "vlmkit-tiny",
    pretrained: str | os.PathLike | None = None,
    device: str | torch.device | None = "auto",
    allow_download: bool | None = None,
) -> LoadedModel:
    """Build a model, its eval preprocessing and its tokenizer (see module docstring)."""
    dev = resolve_device(device)
    pretrained = None if pretrained in (None, "", "none") else pretrained
    pretrained_path = Path(pretrained) if pretrained is not None else None

    if pretrained_path is not None and pretrained_path.is_dir():
        return _load_local_dir(pretrained_path, dev)
    if name.startswith("local-dir:"):
        return _load_local_dir(Path(name[len("local-dir:"):]), dev)
    if name not in open_clip.list_models():
        raise VlmkitError(f"unknown model name {name!r}; bundled: {BUNDLED}; open_clip has {len(open_clip.list_models())} (see vlmkit.models.list_models())")

    mean_std: dict[str, Any] = {}
    checkpoint: str | None = None
    if pretrained is not None:
        if str(pretrained).endswith(CHECKPOINT_SUFFIXES) or os.sep in str(pretrained):
            if not pretrained_path.is_file():
                raise VlmkitError(f"pretrained checkpoint file not found: {pretrained_path}")
            checkpoint = str(pretrained_path)
        else:
            checkpoint, mean_std = _resolve_tag(name, str(pretrained), allow_download)
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=checkpoint, device=dev, **mean_std)
    except RuntimeError as exc:
        if checkpoint is not None:
            raise VlmkitError(f"could not load checkpoint {checkpoint} into {name}: {exc}") from exc
        raise
    tokenizer = open_clip.get_tokenizer(name)
    model_cfg = open_clip.get_model_config(name)
    preprocess_cfg = dict(getattr(model.visual, "preprocess_cfg", {}))
    return LoadedModel(model, preprocess, tokenizer, name, None if pretrained is None else str(pretrained), model_cfg, preprocess_cfg)


def _resolve_tag(name: str, tag: str, allow_download: bool | None) -> tuple[str, dict]:
    """Local file for an open_clip pretrained tag, without waiting on a dead network."""
    tags = open_clip.list_pretrained_tags_by_model(name)
    if tag not in tags:
        raise VlmkitError(f"pretrained={tag!r} is neither a known open_clip tag of {name} ({tags or 'none'}) nor a checkpoint file")
    cfg = open_clip.get_pretrained_cfg(name, tag)
    mean_std = {k: tuple(cfg[k]) for k in ("mean", "std") if k in cfg}
    mean_std = {"image_mean": mean_std["mean"], "image_std": mean_std["std"]} if len(mean_std) == 2 else {}
    if allow_download is None:
        allow_download = os.environ.get("VLMKIT_ALLOW_DOWNLOAD", "") not in ("", "0")
    cached = _cached_tag_file(cfg)
    if cached:
        return cached, mean_std
    how = (
        f"weights for {name} pretrained={tag!r} are not in the local cache and vlmkit does not download by default. "
        f"Either download them on a machine with network and pass the file: load_model({name!r}, pretrained='/path/to/weights.safetensors'), "
        "or allow downloading with load_model(..., allow_download=True) / VLMKIT_ALLOW_DOWNLOAD=1 "
        "(and unset HF_HUB_OFFLINE, which vlmkit sets to 1 unless you set it)."
    )
    if not allow_download:
        raise VlmkitError(how)
    try:
        from open_clip.pretrained import download_pretrained

        return download_pretrained(cfg), mean_std
    except Exception as exc:  # network errors come in many types
        raise VlmkitError(f"{how} Download failed: {type(exc).__name__}: {exc}") from exc


def _cached_tag_file(cfg: dict) -> str | None:
    """The already-downloaded weights of a tag, from the HF cache or open_clip's URL cache."""
    hub = cfg.get("hf_hub", "")
    if hub:
        try:
            from huggingface_hub import hf_hub_download

            repo, filename = os.path.split(hub)
            names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
            for fname in names:
                try:
                    return hf_hub_download(repo, fname, local_files_only=True)
                except Exception:
                    continue
        except ImportError:
            pass
    url = cfg.get("url", "")
    if url:
        path = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
        if path.is_file():
            return str(path)
    return None


def _load_local_dir(path: Path, dev: torch.device) -> LoadedModel:
    cfg_path = path / CONFIG_NAME
    if not cfg_path.is_file():
        raise VlmkitError(f"{path} is not a saved model directory: {CONFIG_NAME} is missing")
    try:
        meta = json.loads(cfg_path.read_text())
        model_cfg = meta["model_cfg"]
    except (json.JSONDecodeError, KeyError) as exc:
        raise VlmkitError(f"{cfg_path}: expected JSON with a 'model_cfg' object ({exc})") from exc
    if not (path / WEIGHTS_NAME).is_file():
        raise VlmkitError(f"{path}: weights file {WEIGHTS_NAME} is missing")
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{path}", device=dev)
    tokenizer = open_clip.get_tokenizer(f"local-dir:{path}")
    name = meta.get("vlmkit", {}).get("name", f"local-dir:{path}")
    preprocess_cfg = dict(getattr(model.visual, "preprocess_cfg", meta.get("preprocess_cfg", {})))
    return LoadedModel(model, preprocess, tokenizer, name, str(path), model_cfg, preprocess_cfg)


def save_model(loaded: LoadedModel, path: str | os.PathLike, extra: dict | None = None) -> Path:
    """Write weights (safetensors) and config into directory ``path``, atomically per file.

    The directory is open_clip's ``local-dir`` layout, so ``open_clip`` itself can load it
    (``create_model_and_transforms("local-dir:PATH")``) as well as :func:`load_model`.
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in loaded.model.state_dict().items()}
    with atomic_path(path / WEIGHTS_NAME) as tmp:
        save_file(state, str(tmp))
    meta = {
        "model_cfg": loaded.model_cfg,
        "preprocess_cfg": loaded.preprocess_cfg,
        "vlmkit": {"name": loaded.name, "pretrained": loaded.pretrained, **(extra or {})},
    }
    atomic_write_json(path / CONFIG_NAME, meta)
    return path
