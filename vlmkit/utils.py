"""Small helpers shared by every stage: devices, seeding, atomic file writes (also of large
``.npy`` matrices, row block by row block), memory-mapped matrices that give their pages back,
fingerprints."""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
import random
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch


class VlmkitError(ValueError):
    """A user-facing error: bad input, bad configuration, or a missing resource.

    The message always names the file, row or parameter at fault and what was expected.
    """


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``/``None`` picks CUDA when available, else CPU; anything else is passed to torch."""
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise VlmkitError(f"device={device!r} was requested but CUDA is not available; use 'cpu' or 'auto'")
    return dev


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) RNGs."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed over ``path``.

    An interrupted write leaves at most a ``.tmp`` file that nothing ever reads, never a
    half-written ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        if tmp_path.is_file():  # mkstemp makes 0600; give the file the mode a plain open() would
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces ``path`` (the old one is
    moved aside first and removed after), so readers see the old or the new directory,
    never a half-written one. On failure the temporary directory is removed."""
    import shutil

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
    try:
        yield tmp
        old = out.with_name(f".{out.name}.old.tmp")
        if old.exists():
            shutil.rmtree(old)
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
        if old.exists():
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_to_csv(frame: Any, path: str | os.PathLike, **kwargs: Any) -> None:
    """``frame.to_csv(path, **kwargs)`` atomically (pandas DataFrame; ``index=False`` unless given)."""
    kwargs.setdefault("index", False)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, **kwargs)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


class NpyRowWriter:
    """An N × M ``.npy`` file written in blocks of whole rows, in row order, by plain file
    writes — no memory map, so the written pages sit in the page cache, not in the writer's
    resident set — and atomically: the file appears at ``path`` only on :meth:`close` after
    every row was written (an interrupted write leaves no half file).  ``writer[i0:i1] = rows``
    appends rows ``i0 … i1 − 1`` (``i0`` must be the next unwritten row).  A context manager:
    leaving the ``with`` block closes it, or discards the file on an exception."""

    def __init__(self, path: str | os.PathLike, shape: tuple[int, int], dtype: Any = np.float32):
        from numpy.lib import format as npformat

        self.path = Path(path)
        self.shape = tuple(int(x) for x in shape)
        self.dtype = np.dtype(dtype)
        if len(self.shape) != 2 or min(self.shape) < 0:
            raise VlmkitError(f"{self.path.name}: expected an N × M shape, got {shape}")
        self._ctx = atomic_path(self.path)
        self._tmp = self._ctx.__enter__()
        self._f = open(self._tmp, "wb")
        npformat.write_array_header_1_0(self._f, {"descr": npformat.dtype_to_descr(self.dtype),
                                                  "fortran_order": False, "shape": self.shape})
        self.rows_written = 0

    def __setitem__(self, key: slice, value: Any) -> None:
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise VlmkitError(f"{self.path.name}: write whole rows as writer[i0:i1] = rows, got index {key!r}")
        start = 0 if key.start is None else int(key.start)
        if start != self.rows_written:
            raise VlmkitError(f"{self.path.name}: rows are written in order; the next is row {self.rows_written}, "
                              f"got rows from {start}")
        arr = np.ascontiguousarray(value, dtype=self.dtype)
        stop = self.shape[0] if key.stop is None else min(int(key.stop), self.shape[0])
        if arr.shape != (stop - start, self.shape[1]):
            raise VlmkitError(f"{self.path.name}: rows {start}:{stop} need shape {(stop - start, self.shape[1])}, "
                              f"got {arr.shape}")
        self._f.write(memoryview(arr).cast("B"))
        self.rows_written = stop

    def close(self) -> Path:
        """Finish the file (every row must have been written) and move it to ``path``."""
        if self._f.closed:
            return self.path
        if self.rows_written != self.shape[0]:
            self.abort()
            raise VlmkitError(f"{self.path.name}: closed after {self.rows_written} of {self.shape[0]} rows")
        self._f.close()
        self._ctx.__exit__(None, None, None)
        return self.path

    def abort(self) -> None:
        """Discard the partial file."""
        if not self._f.closed:
            self._f.close()
            try:
                self._ctx.__exit__(RuntimeError, RuntimeError("aborted"), None)
            except RuntimeError:
                pass

    def __enter__(self) -> "NpyRowWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


#: ``madvise`` advice that drops a mapping's resident pages (None where the platform lacks it)
_MADV_DONTNEED = getattr(mmap, "MADV_DONTNEED", None)


class ReleasingMemmap(np.memmap):
    """A read-only memory-mapped matrix that gives back the pages it has read: every new index
    first drops the mapping's resident pages (``madvise(MADV_DONTNEED)``; for a read-only file
    mapping the data stays in the page cache and is mapped again, unchanged, when touched), so a
    process that reads a 477 MiB score matrix in row blocks keeps about one block resident, not
    every page it has ever read — ``VmHWM``, the peak RSS, counts touched file pages.  Values
    and behaviour are a plain ``np.memmap``'s; where ``madvise`` is missing it is one."""

    def __getitem__(self, key):
        mm = getattr(self, "_mmap", None)
        if mm is not None and _MADV_DONTNEED is not None:
            try:
                mm.madvise(_MADV_DONTNEED)
            except (OSError, ValueError):  # closed, or not supported here: keep the pages
                pass
        return super().__getitem__(key)


def as_tensor(x: Any, name: str = "input", *, dtype: torch.dtype | None = None,
              device: torch.device | str | None = None) -> torch.Tensor:
    """A detached tensor from a tensor / NumPy array (zero-copy where possible) / nested sequence.

    The one array-coercion helper of vlmkit: anything that cannot be converted raises a
    :class:`VlmkitError` naming ``name``. ``dtype`` / ``device`` convert afterwards.
    """
    if isinstance(x, torch.Tensor):
        t = x.detach()
    elif isinstance(x, np.ndarray):
        arr = x if x.flags.writeable else np.array(x)
        try:
            t = torch.from_numpy(np.ascontiguousarray(arr))
        except TypeError as exc:
            raise VlmkitError(f"{name}: unsupported array dtype {x.dtype} ({exc})") from None
    else:
        try:
            t = torch.as_tensor(np.asarray(x))
        except Exception as exc:  # noqa: BLE001 - any conversion failure is the user's input
            raise VlmkitError(f"{name}: expected a tensor or array, got {type(x).__name__} ({exc})") from None
    if dtype is not None or device is not None:
        t = t.to(dtype=dtype or t.dtype, device=device or t.device)
    return t


def as_numpy(x: Any, name: str = "input", *, dtype: Any = None) -> np.ndarray:
    """A NumPy array from a tensor (detached, moved to CPU) / array / nested sequence."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = x.float() if x.dtype == torch.bfloat16 else x  # NumPy has no bfloat16
        x = x.numpy()
    try:
        return np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise VlmkitError(f"{name}: expected a tensor or array, got {type(x).__name__} ({exc})") from None


def first_captions(caption_image: Any, n_images: int, per_image: int | None = 1, *,
                   by_image: bool = False) -> np.ndarray:
    """Indices (ascending) of the first ``per_image`` captions written for each image, in
    caption order; ``None`` keeps every caption. Images with fewer captions keep all theirs.

    ``by_image=True`` (with ``per_image=1``) gives the row-paired view instead: an array of
    ``n_images`` entries, entry ``i`` the first caption of image ``i`` (``txt[first]`` pairs
    row by row with ``img``); an image without a caption raises naming it.

    ``caption_image[j]`` is the image caption ``j`` was written for; an index outside
    ``[0, n_images)`` raises naming the caption.  The one helper for "first captions" (the
    training loop's epoch, the notebooks' and the ledger's row-paired analyses).
    """
    ci = as_numpy(caption_image, "caption_image").reshape(-1)
    if len(ci) and not np.issubdtype(ci.dtype, np.integer):
        raise VlmkitError(f"caption_image: expected integer image indices, got dtype {ci.dtype}")
    ci = ci.astype(np.int64)
    if len(ci) and (ci.min() < 0 or ci.max() >= n_images):
        bad = int(np.flatnonzero((ci < 0) | (ci >= n_images))[0])
        raise VlmkitError(f"caption {bad} points at image {ci[bad]}, but there are {n_images} images")
    if by_image and per_image != 1:
        raise VlmkitError("first_captions(by_image=True) pairs one caption with each image; got "
                          f"per_image={per_image!r}")
    if per_image is None:
        return np.arange(len(ci))
    if isinstance(per_image, bool) or not isinstance(per_image, (int, np.integer)) or per_image < 1:
        raise VlmkitError(f"per_image={per_image!r}: expected None (all captions) or an integer >= 1")
    order = np.argsort(ci, kind="stable")  # grouped by image, caption order within each image
    grouped = ci[order]
    rank = np.arange(len(ci)) - np.searchsorted(grouped, grouped, side="left")
    chosen = np.sort(order[rank < per_image])
    if not by_image:
        return chosen
    first = np.full(n_images, -1, dtype=np.int64)
    first[ci[chosen]] = chosen
    if (first < 0).any():
        raise VlmkitError(f"image {int(np.flatnonzero(first < 0)[0])} has no caption")
    return first


def read_positives_json(path_or_map: Any, what: str = "extended-positives file") -> tuple[dict, str]:
    """``(mapping, where)`` from a ``{query id: [positive ids]}`` dict or JSON file (ECCV
    Caption / CxC layout); a missing file, malformed JSON or a non-object raise naming it."""
    from collections.abc import Mapping

    if isinstance(path_or_map, Mapping):
        return dict(path_or_map), "<dict>"
    where = str(path_or_map)
    try:
        mapping = json.loads(Path(path_or_map).read_text())
    except FileNotFoundError:
        raise VlmkitError(f"{what} not found: {where}") from None
    except json.JSONDecodeError as exc:
        raise VlmkitError(f"{where}: malformed JSON ({exc})") from None
    if not isinstance(mapping, dict):
        raise VlmkitError(f"{where}: expected a JSON object mapping query id -> list of positive ids")
    return mapping, where


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-able parts, bytes, arrays and tensors (for cache keys)."""
    h = hashlib.sha256()
    for part in parts:
        _update_hash(h, part)
    return h.hexdigest()[:20]


def _update_hash(h: "hashlib._Hash", part: Any) -> None:
    if isinstance(part, bytes):
        h.update(part)
    elif isinstance(part, torch.Tensor):
        t = part.detach().cpu().contiguous()
        h.update(str((t.dtype, tuple(t.shape))).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(part, np.ndarray):
        a = np.ascontiguousarray(part)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    elif isinstance(part, dict):
        for k in sorted(part):
            h.update(str(k).encode())
            _update_hash(h, part[k])
    elif isinstance(part, (list, tuple)):
        h.update(b"[")
        for p in part:
            _update_hash(h, p)
        h.update(b"]")
    else:
        h.update(json.dumps(part, sort_keys=True, default=str).encode())


def parse_override(text: str, allowed: Any, flag: str = "--set") -> tuple[str, Any]:
    """``FIELD=VALUE`` of a command-line override → (field, value); VALUE is YAML (``0.5``,
    ``true``, ``[a, b]``), a number written ``2e-4`` included (YAML 1.1 reads it as a string)."""
    import yaml

    key, eq, raw = text.partition("=")
    key = key.strip()
    if not eq or not key:
        raise VlmkitError(f"{flag} {text!r}: expected FIELD=VALUE, e.g. {flag} noise_reference=true")
    if key not in allowed:
        raise VlmkitError(f"{flag} {text!r}: unknown field {key!r}; expected one of {sorted(allowed)}")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        raise VlmkitError(f"{flag} {text!r}: the value is not valid YAML ({str(e).splitlines()[0]})") from None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    return key, value


def set_offline_hub(default: bool = True) -> None:
    """Make huggingface_hub fail fast instead of retrying for ~46 s when there is no network.

    Must run before ``huggingface_hub`` is imported; it only sets variables the user has not set.
    """
    if default:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def progress(iterable: Any = None, *, total: int | None = None, desc: str = "", **kwargs: Any):
    """A ``tqdm.auto`` progress bar that does not flood logs.

    ``VLMKIT_NO_PROGRESS=1`` disables bars; ``VLMKIT_PROGRESS_INTERVAL`` (seconds, default 1)
    throttles refreshes, which keeps papermill's captured output short.
    """
    from tqdm.auto import tqdm

    disable = os.environ.get("VLMKIT_NO_PROGRESS", "") not in ("", "0")
    interval = float(os.environ.get("VLMKIT_PROGRESS_INTERVAL", "1.0"))
    return tqdm(iterable, total=total, desc=desc, disable=disable, mininterval=interval, **kwargs)
