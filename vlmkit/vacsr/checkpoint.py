"""Adapter checkpoints: ``<dir>/adapter.safetensors`` + ``<dir>/config.json``, written atomically.

The safetensors file carries the config in its metadata too, and config.json carries the
weights' SHA-256, so a directory whose two files come from different saves is detected.
Loading against an expected config whose architecture differs raises a ``VlmkitError``
naming the fields that differ.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from vlmkit.utils import VlmkitError, atomic_path, atomic_write_json, resolve_device
from vlmkit.vacsr.adapter import VACSRAdapter
from vlmkit.vacsr.config import VACSRConfig

WEIGHTS = "adapter.safetensors"
CONFIG = "config.json"
FORMAT = "vlmkit.vacsr/1"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_adapter(adapter: VACSRAdapter, path: str | Path, extra: dict | None = None) -> Path:
    """Write the adapter to directory ``path`` (created); returns the directory."""
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in adapter.state_dict().items()}
    cfg = adapter.config.to_dict()
    with atomic_path(path / WEIGHTS) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT, "config": json.dumps(cfg, sort_keys=True)})
    atomic_write_json(path / CONFIG, {"format": FORMAT, "config": cfg,
                                      "weights_sha256": _sha256(path / WEIGHTS), "extra": extra or {}})
    return path


def load_adapter(path: str | Path, config: VACSRConfig | None = None,
                 device: str | torch.device = "cpu") -> VACSRAdapter:
    """Load an adapter saved by :func:`save_adapter`.

    config: the configuration the caller expects; if its architecture fields differ from the
    checkpoint's, a ``VlmkitError`` names them. Loss-only fields (λ's, k, STE …) may differ;
    the returned adapter then uses the caller's config.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    wfile, cfile = path / WEIGHTS, path / CONFIG
    for f in (wfile, cfile):
        if not f.is_file():
            raise VlmkitError(f"{f}: missing; expected a VACSR checkpoint directory written by save_adapter")
    try:
        meta_json = json.loads(cfile.read_text())
    except json.JSONDecodeError as e:
        raise VlmkitError(f"{cfile}: not valid JSON ({e})") from e
    if meta_json.get("format") != FORMAT:
        raise VlmkitError(f"{cfile}: format {meta_json.get('format')!r}, expected {FORMAT!r}")
    if meta_json.get("weights_sha256") != _sha256(wfile):
        raise VlmkitError(f"{wfile}: does not match the weights hash in {cfile} "
                          "(the two files come from different saves)")
    stored = VACSRConfig.from_dict(meta_json["config"], source=str(cfile))
    with safe_open(str(wfile), framework="pt") as fh:
        md = fh.metadata() or {}
    if md.get("config") and VACSRConfig.from_dict(json.loads(md["config"]), source=str(wfile)).arch_diff(stored):
        raise VlmkitError(f"{wfile}: its embedded config disagrees with {cfile}")
    if config is not None:
        diff = stored.arch_diff(config)
        if diff:
            listed = ", ".join(f"{k}: checkpoint {a!r} vs requested {b!r}" for k, (a, b) in diff.items())
            raise VlmkitError(f"{path}: checkpoint was saved with another adapter config ({listed})")
    adapter = VACSRAdapter(config if config is not None else stored)
    state = load_file(str(wfile))
    own = adapter.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        raise VlmkitError(f"{wfile}: weights do not fit the config (missing {missing[:5]}, "
                          f"unexpected {unexpected[:5]}, wrong shapes {wrong[:5]})")
    adapter.load_state_dict(state)
    return adapter.to(resolve_device(device))
