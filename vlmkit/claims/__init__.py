"""The claims ledger (issue #14): every headline claim of the two seed papers re-tested on the
embedded data's exact truth, with seeds, spread and a verdict.

    vlmkit claims [--quick] [--seeds 0,1,2] [--out runs/claims] [--doc docs/results.md]

    from vlmkit.claims import LedgerConfig, run_ledger
    ledger = run_ledger(LedgerConfig.quick(), "runs/claims-quick", "runs/claims-quick/results.md")

* :mod:`~vlmkit.claims.config` — :class:`LedgerConfig`, every size knob (``quick()`` preset);
* :mod:`~vlmkit.claims.experiments` — the cached units of work (fine-tuning runs, VACSR on frozen
  features, zero-shot), shared by the claims;
* :mod:`~vlmkit.claims.ledger` — the claims (1–14, with 3 and 4 split into the paper's test and a
  control), the comparisons each rests on and the preconditions it is read under;
* :mod:`~vlmkit.claims.verdicts` — the rule and its preconditions, written once;
* :mod:`~vlmkit.claims.document` — ``docs/results.md`` and its figures;
* :mod:`~vlmkit.claims.arithmetic` — claim 12, embedding arithmetic against the generator's truth.
"""

from .arithmetic import edit_queries, embedding_arithmetic, text_encoder
from .config import VACSR_VARIANTS, LedgerConfig
from .ledger import CLAIMS, evaluate_claims
from .run import find_ledger, read_ledger, run_ledger
from .verdicts import (RULE, VERDICTS, Comparison, Precondition, beats_zero_shot, did_train, over_confident, t_interval,
                       verdict)

__all__ = ["CLAIMS", "Comparison", "LedgerConfig", "Precondition", "RULE", "VACSR_VARIANTS", "VERDICTS",
           "beats_zero_shot", "did_train", "edit_queries", "embedding_arithmetic", "evaluate_claims", "find_ledger",
           "over_confident", "read_ledger", "run_ledger", "t_interval", "text_encoder", "verdict"]
