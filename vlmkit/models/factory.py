"""One call to get a CLIP-style model: :func:`load_model`.

``load_model(name, pretrained)`` returns a :class:`LoadedModel` (model, preprocessing,
tokenizer). ``name`` is an open_clip architecture (``"ViT-B-32"``, ``"RN50"``, …; see
:func:`list_models`) or a bundled vlmkit config (``"vlmkit-tiny"``, ``"vlmkit-small"``: tiny
CLIPs sized for a CPU); ``pretrained`` is one of

* ``None`` — random weights;
* ``"stand-in"`` — the shipped stand-in CLIP (``vlmkit-base``, :mod:`vlmkit.models.stand_in`);
  ``"stand-in-base"`` — its first pretraining stage, which the stand-in continues from;
* an open_clip tag (``"openai"``, ``"laion2b_s34b_b79k"``, …) whose weights are already in the
  local cache: the Hugging Face hub cache (``HF_HUB_CACHE``) or, for OpenAI's tags, OpenAI's
  TorchScript files in ``~/.cache/clip`` (checked against the SHA-256 in their URL); the tag's
  image mean/std/interpolation/resize mode set the preprocessing;
* a weights file (``.pt`` / ``.pth`` / ``.bin`` / ``.safetensors``): a state dict, or a dict with
  a ``'state_dict'`` key as open_clip's training writes, ``module.`` prefixes allowed
  (:mod:`vlmkit.models.checkpoint`); ``name`` must be the architecture it was saved from;
* a directory written by :func:`save_model` (open_clip's ``local-dir`` layout:
  ``open_clip_config.json`` + ``open_clip_model.safetensors``, or an open_clip hub snapshot
  with ``open_clip_pytorch_model.bin``); ``name`` may be left out. The directory's config
  always wins: a ``name`` whose config differs is ignored with a ``UserWarning``.
  ``name="local-dir:PATH"`` is the same.

Without ``name`` (and without a directory) the architecture is ``vlmkit-tiny``.

Errors (all :class:`~vlmkit.utils.VlmkitError`, naming the file and what was expected): an
unknown name or tag; a missing file; garbage, empty or truncated files; a pickle holding Python
objects that would need code execution (``torch.load(weights_only=True)`` refuses it and vlmkit
never suggests otherwise); a checkpoint of another architecture or embedding size (a few
missing / unexpected keys and differing shapes are named); a directory without its config or
weights. Offline, a tag whose weights are not cached fails at once (no minute of retries) with a
message saying how to pass a local checkpoint; set ``allow_download=True`` (or
``VLMKIT_ALLOW_DOWNLOAD=1``) on a machine with network to fetch them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..utils import VlmkitError, atomic_path, atomic_write_json, resolve_device, set_offline_hub
from .checkpoint import ARCH_HINT, apply_state_dict, read_state_dict, weights_follow

set_offline_hub()  # before open_clip imports huggingface_hub

import open_clip  # noqa: E402
import torch  # noqa: E402

CONFIG_DIR = Path(__file__).parent / "configs"
BUNDLED = sorted(p.stem for p in CONFIG_DIR.glob("*.json"))
open_clip.add_model_config(CONFIG_DIR)

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")
WEIGHTS_NAME = "open_clip_model.safetensors"
CONFIG_NAME = "open_clip_config.json"
#: ``pretrained="stand-in"``: the shipped stand-in CLIP (:mod:`vlmkit.models.stand_in`)
STAND_IN = "stand-in"
STAND_IN_DIR = Path(__file__).parent / "weights" / "stand-in"
#: ``pretrained="stand-in-base"``: the first pretraining stage the stand-in continues from (shipped too)
STAND_IN_BASE = "stand-in-base"
STAND_IN_BASE_DIR = Path(__file__).parent / "weights" / "stand-in-base"
SHIPPED_TAGS = {STAND_IN: STAND_IN_DIR, STAND_IN_BASE: STAND_IN_BASE_DIR}
DIR_WEIGHTS = (WEIGHTS_NAME, "open_clip_pytorch_model.bin")  # save_model's, an open_clip hub snapshot's
DEFAULT_MODEL = "vlmkit-tiny"


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
        return {"name": self.name, "pretrained": self.pretrained, "model_cfg": self.model_cfg,
                "preprocess_cfg": self.preprocess_cfg}


def list_models() -> list[str]:
    """Bundled vlmkit configs first, then open_clip's architectures."""
    return BUNDLED + [m for m in open_clip.list_models() if m not in BUNDLED]


def load_model(
    name: str | None = None,
    pretrained: str | os.PathLike | None = None,
    device: str | torch.device | None = "auto",
    allow_download: bool | None = None,
) -> LoadedModel:
    """Build a model, its eval preprocessing and its tokenizer (forms and errors: module docstring)."""
    dev = resolve_device(device)
    name = name or None  # "" (a notebook's empty parameter) = no name
    pretrained = None if pretrained in (None, "", "none") else pretrained
    if isinstance(pretrained, str) and pretrained in SHIPPED_TAGS:
        pretrained = SHIPPED_TAGS[pretrained]
    pretrained_path = Path(pretrained) if pretrained is not None else None

    if name is not None and name.startswith("local-dir:"):
        return _load_local_dir(Path(name[len("local-dir:"):]), dev, None)
    if pretrained_path is not None and pretrained_path.is_dir():
        return _load_local_dir(pretrained_path, dev, name)
    arch = name or DEFAULT_MODEL
    if arch not in open_clip.list_models():
        raise VlmkitError(f"unknown model name {arch!r}; bundled: {BUNDLED}; open_clip has "
                          f"{len(open_clip.list_models())} (see vlmkit.models.list_models())")

    transform_kw: dict[str, Any] = {}
    state = None
    if pretrained is not None:
        bare_file = pretrained_path.is_file() and str(pretrained) not in open_clip.list_pretrained_tags_by_model(arch)
        if str(pretrained).endswith(CHECKPOINT_SUFFIXES) or os.sep in str(pretrained) or bare_file:
            if not pretrained_path.is_file():
                raise VlmkitError(f"pretrained checkpoint file not found: {pretrained_path}")
            state = read_state_dict(pretrained_path)
            source = str(pretrained_path)
        else:
            file, transform_kw, trusted = _resolve_tag(arch, str(pretrained), allow_download)
            state = read_state_dict(file, allow_torchscript=trusted)
            source = f"{file} (open_clip tag {pretrained!r})"
    with weights_follow() if state is not None else contextlib.nullcontext():
        model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=None, device=dev, **transform_kw)
    if state is not None:
        hint = ARCH_HINT if name else f"No model name was given, so {arch} was assumed. {ARCH_HINT}"
        apply_state_dict(model, state, source, arch, hint)
    tokenizer = open_clip.get_tokenizer(arch)
    model_cfg = open_clip.get_model_config(arch)
    preprocess_cfg = dict(getattr(model.visual, "preprocess_cfg", {}))
    return LoadedModel(model, preprocess, tokenizer, arch, None if pretrained is None else str(pretrained), model_cfg,
                       preprocess_cfg)


def _resolve_tag(name: str, tag: str, allow_download: bool | None) -> tuple[str, dict, bool]:
    """Local file of an open_clip pretrained tag, the tag's preprocessing overrides, and whether the
    file may be a TorchScript archive (OpenAI's, hash-checked); never waits on a dead network."""
    tags = open_clip.list_pretrained_tags_by_model(name)
    if tag not in tags:
        raise VlmkitError(f"pretrained={tag!r} is neither a known open_clip tag of {name} ({tags or 'none'}) nor a "
                          "checkpoint file")
    cfg = open_clip.get_pretrained_cfg(name, tag)
    transform_kw = {f"image_{k}": tuple(cfg[k]) if k in ("mean", "std") else cfg[k]
                    for k in ("mean", "std", "interpolation", "resize_mode") if cfg.get(k) is not None}
    if bool(cfg.get("quick_gelu", False)) != bool((open_clip.get_model_config(name) or {}).get("quick_gelu", False)):
        warnings.warn(f"open_clip tag {tag!r} was trained with quick_gelu={bool(cfg.get('quick_gelu'))} but {name} "
                      f"uses the other activation; use {name}-quickgelu (or {name.removesuffix('-quickgelu')}) for its "
                      "numbers", UserWarning, stacklevel=3)
    if allow_download is None:
        allow_download = os.environ.get("VLMKIT_ALLOW_DOWNLOAD", "") not in ("", "0")
    cached = _cached_tag_file(cfg)
    if cached:
        return cached[0], transform_kw, cached[1]
    how = (
        f"weights for {name} pretrained={tag!r} are not in the local cache and vlmkit does not download by default. "
        f"Either download them on a machine with network and pass the file: load_model({name!r}, "
        "pretrained='/path/to/weights.safetensors'), "
        "or allow downloading with load_model(..., allow_download=True) / VLMKIT_ALLOW_DOWNLOAD=1 "
        "(and unset HF_HUB_OFFLINE, which vlmkit sets to 1 unless you set it)."
    )
    if not allow_download:
        raise VlmkitError(how)
    try:
        from open_clip.pretrained import download_pretrained

        file = download_pretrained(cfg)
    except Exception as exc:  # network errors come in many types
        raise VlmkitError(f"{how} Download failed: {type(exc).__name__}: {exc}") from exc
    return file, transform_kw, not cfg.get("hf_hub")  # a URL download was hash-checked by open_clip


def _cached_tag_file(cfg: dict) -> tuple[str, bool] | None:
    """The already-downloaded weights of a tag and whether they are a trusted TorchScript file:
    the HF hub cache first (state dicts), then OpenAI's URL cache ``~/.cache/clip``."""
    hub = cfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import hf_hub_download

        repo, filename = os.path.split(hub)
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        for fname in names:
            try:
                return hf_hub_download(repo, fname, local_files_only=True), False
            except Exception:  # not cached (huggingface_hub raises several types)
                continue
    url = cfg.get("url", "")
    if url:
        path = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
        if path.is_file():
            expected = url.split("/")[-2] if len(url.split("/")) > 2 else ""
            if len(expected) == 64:  # OpenAI's URLs carry the file's SHA-256
                digest = hashlib.sha256()
                with open(path, "rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        digest.update(block)
                if digest.hexdigest() != expected:
                    raise VlmkitError(f"cached weights {path} have SHA-256 {digest.hexdigest()[:12]}…, expected "
                                      f"{expected[:12]}… "
                                      f"(from {url}): a damaged download; delete the file and fetch it again")
                return str(path), True
            return str(path), False
    return None


def _load_local_dir(path: Path, dev: torch.device, name: str | None) -> LoadedModel:
    """A save_model / open_clip local-dir directory; its config wins over ``name`` (warning)."""
    cfg_path = path / CONFIG_NAME
    if not cfg_path.is_file():
        raise VlmkitError(f"{path} is not a saved model directory: {CONFIG_NAME} is missing")
    try:
        meta = json.loads(cfg_path.read_text())
        model_cfg = meta["model_cfg"]
        if not isinstance(model_cfg, dict):
            raise KeyError("model_cfg is not an object")
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise VlmkitError(f"{cfg_path}: expected JSON with a 'model_cfg' object ({exc})") from exc
    weights = next((path / w for w in DIR_WEIGHTS if (path / w).is_file()), None)
    if weights is None:
        raise VlmkitError(f"{path}: weights file {WEIGHTS_NAME} is missing")
    saved_name = (meta.get("vlmkit") or {}).get("name") or f"local-dir:{path}"
    if name is not None and name != saved_name and _norm(open_clip.get_model_config(name)) != _norm(model_cfg):
        warnings.warn(f"load_model: name={name!r} ignored: {path} holds a {saved_name} model and its {CONFIG_NAME} "
                      "decides the architecture", UserWarning, stacklevel=3)
    state = read_state_dict(weights)
    try:
        with weights_follow():
            model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{path}", load_weights=False,
                                                                         device=dev)
        tokenizer = open_clip.get_tokenizer(f"local-dir:{path}")
    except Exception as exc:  # open_clip raises TypeError / ValueError / KeyError on odd configs
        raise VlmkitError(f"{cfg_path}: open_clip cannot build a model from its model_cfg ({type(exc).__name__}: "
                          f"{exc})") from None
    apply_state_dict(model, state, str(weights), f"the model of {cfg_path}",
                     f"The weights do not fit the directory's own {CONFIG_NAME}: was one of the two replaced?")
    preprocess_cfg = dict(getattr(model.visual, "preprocess_cfg", meta.get("preprocess_cfg", {})))
    return LoadedModel(model, preprocess, tokenizer, saved_name, str(path), model_cfg, preprocess_cfg)


def _norm(cfg: Any) -> Any:
    """A config as JSON sees it (tuples become lists), for comparison."""
    return json.loads(json.dumps(cfg)) if cfg is not None else None


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
