"""``python -m vlmkit.train --method m2mix --epochs 3 --out runs/x [...]`` (also under torchrun).

Every :class:`~vlmkit.train.TrainConfig` field is an option (``--lr-mult-image``,
``--loss-overrides '{"weight_m2mix": 0.05}'``, ``--vacsr '{"lr": 1e-3}'`` …).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import MISSING, fields

from ..utils import VlmkitError
from .config import TrainConfig


def _bool(s: str) -> bool:
    if s.lower() in ("1", "true", "yes", "on"):
        return True
    if s.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {s!r}")


def _none_or_str(s: str) -> str | None:
    return None if s.lower() in ("none", "") else s


def _none_or_int(s: str) -> int | None:
    if s.lower() in ("none", "all", ""):
        return None
    try:
        return int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'none', got {s!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m vlmkit.train",
                                description="Fine-tune a CLIP-style model (vlmkit.train.finetune).")
    p.add_argument("--out", required=True, help="run directory (checkpoint.pt, best/, history.json/.csv, config.json)")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint in --out")
    p.add_argument("--stop-after-epochs", type=int, default=None,
                   help="return after this many epochs of this run (resume later)")
    for f in fields(TrainConfig):
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        flag = "--" + f.name.replace("_", "-")
        if isinstance(default, bool):
            p.add_argument(flag, type=_bool, default=default, metavar="BOOL")
        elif isinstance(default, dict):
            p.add_argument(flag, type=json.loads, default=default, metavar="JSON")
        elif isinstance(default, tuple):
            p.add_argument(flag, nargs="*", default=list(default))
        elif isinstance(default, int):
            p.add_argument(flag, type=int, default=default)
        elif isinstance(default, float):
            p.add_argument(flag, type=float, default=default)
        elif default is None and str(f.type).replace(" ", "") in ("int|None", "Optional[int]"):
            p.add_argument(flag, type=_none_or_int, default=default, metavar="INT|none")
        else:
            p.add_argument(flag, type=_none_or_str, default=default)
    return p


def main(argv: list[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    out, no_resume, stop = args.pop("out"), args.pop("no_resume"), args.pop("stop_after_epochs")
    try:
        cfg = TrainConfig(**args)
        from .loop import finetune

        res = finetune(cfg, out, resume=not no_resume, stop_after_epochs=stop)
    except VlmkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    last = res.history[-1] if res.history else {}
    print(json.dumps({"out_dir": str(res.out_dir), "best_epoch": res.best_epoch, "best_rsum": res.best_rsum,
                      "last": {k: v for k, v in last.items() if isinstance(v, (int, float, str))},
                      "seconds": res.seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
