"""``vlmkit claims [--quick] [--seeds 0,1,2] [--workers N] [--max-minutes M] [--set FIELD=VALUE …]
[--out DIR] [--doc FILE]``."""

from __future__ import annotations

import argparse
import shlex
import sys

from ..utils import VlmkitError


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--quick", action="store_true",
                    help="tiny sizes (the test suite): the same pipeline in about a minute")
    ap.add_argument("--seeds", help="comma-separated seeds (default 0,1,2; --quick 0,1)")
    ap.add_argument("--out", default="runs/claims",
                    help="where each experiment's result is cached (resumable; default runs/claims)")
    ap.add_argument("--doc", help="the document to write (default docs/results.md; with --quick <out>/results.md)")
    ap.add_argument("--device", help="auto (default), cpu, cuda, …")
    ap.add_argument("--max-minutes", type=float,
                    help="start no experiment after this many minutes, then write the document from what ran (the "
                         "claims missing experiments are inconclusive and name them; rerun to complete; 0: only "
                         "read the cache)")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a LedgerConfig field (repeatable; VALUE is YAML), e.g. --set noise_reference=true "
                         "or --set 'vacsr_variants=[K2,K1,K3,K4,no-pos,no-neg,no-sigmoid]'")
    ap.add_argument("--workers", type=int, default=1,
                    help="run that many independent experiments at once, each in its own process "
                         "(default 1; 2 on 2 CPU cores)")


def cmd_claims(args: argparse.Namespace, argv: list[str] | None = None) -> int:
    from ..utils import parse_override
    from .config import SET_FIELDS, LedgerConfig
    from .run import run_ledger

    kw = dict(parse_override(kv, SET_FIELDS) for kv in args.set)
    if args.seeds:
        try:
            kw["seeds"] = tuple(int(s) for s in args.seeds.split(",") if s.strip())
        except ValueError:
            raise VlmkitError(f"--seeds {args.seeds!r}: expected comma-separated integers, e.g. 0,1,2") from None
    if args.device:
        kw["device"] = args.device
    if args.workers != 1:
        kw["workers"] = args.workers
    cfg = LedgerConfig.quick(**kw) if args.quick else LedgerConfig(**kw)
    doc = args.doc or (f"{args.out}/results.md" if args.quick else "docs/results.md")
    given = list(argv if argv is not None else sys.argv[1:])
    given = given[1:] if given[:1] == ["claims"] else given
    command = "vlmkit claims " + " ".join(shlex.quote(a) for a in given)
    ledger = run_ledger(cfg, args.out, doc, command=command.strip(), max_minutes=args.max_minutes)
    if ledger["not_run"]:
        print(f"{len(ledger['not_run'])} experiment(s) not run yet (--max-minutes {args.max_minutes:g}); rerun the "
              "same command to complete the ledger")
    print(f"{doc}: {len(ledger['claims'])} claims; "
          + ", ".join(f"{c['number']} {c['verdict']}" for c in ledger["claims"]))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vlmkit claims", description=__doc__)
    add_arguments(ap)
    args = ap.parse_args(argv)
    try:
        return cmd_claims(args, argv)
    except VlmkitError as exc:
        print(f"vlmkit: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
