"""Reading a weights file into a state dict, and fitting it to a model, with errors that say what is wrong.

:func:`read_state_dict` accepts, whatever the file's suffix (the content decides):

* a safetensors file;
* a PyTorch checkpoint (``torch.save``, zip or legacy format) holding a state dict, or a dict
  with a ``'state_dict'`` key as open_clip's training writes (``epoch``, ``optimizer`` … beside
  it are ignored); ``module.`` (DDP) and ``_orig_mod.`` (``torch.compile``) prefixes are removed;
* a TorchScript archive (OpenAI's original CLIP release) only when the caller vouches for it
  (``allow_torchscript``: the tag cache, after its SHA-256 was checked).

Files are loaded with ``torch.load(weights_only=True)``: a pickle that would have to import and
run code from the file (a pickled custom class, an ``argparse.Namespace`` …) is refused, with
the names of the objects it holds and how to re-save only the weights.

:func:`apply_state_dict` applies open_clip's own conversions (third-party layouts, old text
towers, scalar ``logit_scale``, position-embedding resizing), compares keys and shapes with the
model and loads strictly. Every failure — unreadable, empty, truncated, a foreign architecture,
another embedding size, missing or unexpected keys (a few are named) — is a
:class:`~vlmkit.utils.VlmkitError` naming the file and what was expected. None of them repeats
torch's advice to disable ``weights_only``.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

from ..utils import VlmkitError

EXPECTED = (
    "expected a safetensors file or a PyTorch checkpoint of a state dict "
    "(torch.save(model.state_dict(), path), or a dict with a 'state_dict' key as open_clip training writes)"
)
RESAVE = (
    "Re-save only the weights where the file was made: "
    "safetensors.torch.save_file(model.state_dict(), 'weights.safetensors')"
)
_PREFIXES = ("module.", "_orig_mod.")
_OPENAI_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")
_POS_EMBED_KEYS = ("positional_embedding", "visual.positional_embedding", "text.positional_embedding")


def read_state_dict(path: str | Path, allow_torchscript: bool = False) -> dict[str, torch.Tensor]:
    """The tensors of a weights file on the CPU (see module docstring); raises VlmkitError."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as exc:
        raise VlmkitError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    if size == 0:
        raise VlmkitError(f"checkpoint {path} is empty (0 bytes); {EXPECTED}")
    if _looks_like_safetensors(head, size) or path.suffix == ".safetensors":
        obj = _load_safetensors(path)
    elif head.startswith(b"PK\x03\x04") and _is_torchscript(path):
        obj = _load_torchscript(path, allow_torchscript)
    else:
        obj = _torch_load(path)
    return _unwrap(obj, path)


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    """safetensors: an 8-byte little-endian header length, then a JSON object."""
    return len(head) >= 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < size


def _load_safetensors(path: Path) -> dict:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # SafetensorError, OSError, …
        raise VlmkitError(
            f"checkpoint {path} is a damaged safetensors file ({_brief(exc)}): truncated or corrupted "
            "in transfer? Copy or download it again"
        ) from None


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.split("/", 1)[-1].startswith(("code/", "constants.pkl")) for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False  # truncated zip: torch.load reports it


def _load_torchscript(path: Path, allow: bool) -> dict:
    if not allow:
        raise VlmkitError(
            f"checkpoint {path} is a TorchScript archive (OpenAI's original CLIP format), which may hold code; "
            f"vlmkit reads weights only ({EXPECTED}). For OpenAI's weights pass the open_clip tag "
            "(pretrained='openai', with the file in the Hugging Face cache or ~/.cache/clip), or convert it "
            "yourself if you trust it: torch.jit.load(path).state_dict() → safetensors.torch.save_file"
        )
    try:
        sd = dict(torch.jit.load(str(path), map_location="cpu").state_dict())
    except Exception as exc:
        raise VlmkitError(f"checkpoint {path}: TorchScript archive could not be read ({_brief(exc)})") from None
    for key in _OPENAI_EXTRA_KEYS:
        sd.pop(key, None)
    return sd


def _torch_load(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        needs = _unsafe_globals(path, exc)
        if needs:
            raise VlmkitError(
                f"checkpoint {path} holds pickled Python objects ({', '.join(needs[:3])}) that only code "
                "from outside the file could rebuild; vlmkit loads tensors only, never running code from a file. "
                f"{RESAVE}"
            ) from None
        raise VlmkitError(f"checkpoint {path} is not a weights file (unreadable bytes: {_brief(exc)}); "
                          f"{EXPECTED}") from None
    except Exception as exc:  # RuntimeError (zip), EOFError (legacy), OSError, ValueError, …
        raise VlmkitError(
            f"checkpoint {path} is truncated or corrupted ({type(exc).__name__}: {_brief(exc) or 'ran out of data'}); "
            f"{EXPECTED}. Copy or download it again"
        ) from None


def _unsafe_globals(path: Path, exc: Exception) -> list[str]:
    """Names of the Python objects a refused pickle would import (empty: plain garbage)."""
    try:
        found = list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:
        found = []
    return found or re.findall(r"GLOBAL ([\w.]+)", str(exc))


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj:
        what = "an empty dict" if isinstance(obj, Mapping) else f"a {type(obj).__name__}"
        raise VlmkitError(f"checkpoint {path} holds {what}; {EXPECTED}")
    bad = [str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise VlmkitError(
            f"checkpoint {path}: {len(bad)} entries are not named tensors (e.g. {bad[:3]}; keys: {list(obj)[:6]}); "
            f"{EXPECTED}"
        )
    sd = dict(obj)
    for prefix in _PREFIXES:
        if all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items()}
    return sd


ARCH_HINT = "Pass the architecture it was saved from as the model name, e.g. load_model('ViT-B-32', pretrained=...)"


def apply_state_dict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str, name: str,
                     hint: str = ARCH_HINT) -> None:
    """Load ``state`` into ``model`` strictly, after open_clip's conversions (as its
    ``load_checkpoint``); on any mismatch raise VlmkitError naming ``source``, what differs and ``hint``."""
    from open_clip.convert import convert_state_dict
    from open_clip.model import convert_to_custom_text_state_dict, resize_pos_embed, resize_text_pos_embed

    where = f"could not load checkpoint {source} into {name}"
    try:
        state = convert_state_dict(model, dict(state))
        if "positional_embedding" in state and not hasattr(model, "positional_embedding"):
            state = convert_to_custom_text_state_dict(state)
        for key in ("logit_scale", "logit_bias"):
            target = getattr(model, key, None)
            if (key in state and target is not None and state[key].ndim != target.ndim
                    and state[key].numel() == target.numel()):
                state[key] = state[key].reshape(target.shape)
        if "logit_bias" not in state and getattr(model, "logit_bias", None) is not None:
            state["logit_bias"] = torch.zeros_like(model.logit_bias)
        own = model.state_dict()
        derived = {n for n, _ in model.named_buffers()} - set(own)  # non-persistent: rebuilt from the config
        derived.add("text.transformer.embeddings.position_ids")  # transformers >= 4.31 text towers dropped it
        for key in [k for k in derived if k in state and k not in own]:
            del state[key]  # e.g. attn_mask, kept by TorchScript archives
    except Exception as exc:  # open_clip's converters assume their own layouts
        raise VlmkitError(f"{where}: its layout could not be converted ({type(exc).__name__}: {_brief(exc)})") from None

    expected = model.state_dict()
    problems = _mismatches(state, expected)
    if problems:
        raise VlmkitError(f"{where}: the checkpoint is of another architecture. "
                          f"{_embed_note(state, expected, name)}{problems}. {hint}")
    try:
        resize_pos_embed(state, model)
        resize_text_pos_embed(state, model)
        model.load_state_dict(state, strict=True)
    except (AssertionError, RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise VlmkitError(f"{where}: {type(exc).__name__}: {_brief(exc, 400)}") from None


@contextlib.contextmanager
def weights_follow():
    """Silence open_clip's "initialized randomly" log line while a model is built for weights loaded next."""
    root = logging.getLogger()
    note = _DropRandomInitNote()
    root.addFilter(note)
    try:
        yield
    finally:
        root.removeFilter(note)


class _DropRandomInitNote(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "initialized randomly" not in record.getMessage()


def _mismatches(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> str:
    """'' when keys and shapes fit (position embeddings of another length are resized later)."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
        and not (k in _POS_EMBED_KEYS and state[k].ndim == v.ndim and state[k].shape[-1] == v.shape[-1])
    ]
    parts = []
    if missing:
        parts.append(f"missing keys: {len(missing)} (e.g. {', '.join(missing[:3])})")
    if unexpected:
        parts.append(f"unexpected keys: {len(unexpected)} (e.g. {', '.join(unexpected[:3])})")
    if shapes:
        parts.append(f"differing shapes: {len(shapes)} (e.g. {'; '.join(shapes[:3])})")
    return "; ".join(parts)


def _embed_note(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], name: str) -> str:
    for key in ("text_projection", "visual.proj"):
        if key in state and key in expected and state[key].ndim == 2 and expected[key].ndim == 2:
            ours, theirs = int(expected[key].shape[-1]), int(state[key].shape[-1])
            if ours != theirs:
                return f"Its embedding size is {theirs}, {name}'s is {ours}. "
            return ""
    return ""


def _brief(exc: BaseException, limit: int = 160) -> str:
    """An exception's text on one line, cut at ``limit``, without torch's advice to turn off ``weights_only``."""
    text = " ".join(str(exc).split())
    if "weights_only" in text or "Weights only" in text:
        return type(exc).__name__
    text = text.split(". ")[0]  # torch's long explanations follow the first sentence
    return text if len(text) <= limit else text[: limit - 1] + "…"
