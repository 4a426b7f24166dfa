"""Notebook parameters as ``vlmkit run`` hands them over: each value converted to the type the
notebook's ``parameters`` cell declares.

``-p KEY VALUE`` and ``--grid`` values are parsed as YAML, which reads ``1e-5`` as a *string*
(YAML 1.1 wants a dot: ``1.0e-5``) and ``5000`` as an int.  :func:`coerce` turns such a value
into what the notebook declares (``lr: float = 5e-4`` → ``1e-05``): a number for ``float`` (an
int is fine; the text of a number too), an integral number for ``int``, ``true``/``false`` for
``bool`` and the text itself for ``str``.  Anything else raises a :class:`VlmkitError` that
names the parameter, where it came from, the notebook(s) declaring it and the expected type.
Lists and parameters declared with different types by different notebooks pass unchanged.

The declared types are papermill's own inspection (``inferred_type_name``), the same source
as the list of known parameters (``vlmkit.cli.declared_parameters``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from .utils import VlmkitError

SCALARS = ("float", "int", "bool", "str")


def declared_types(nbs: list[str | os.PathLike]) -> dict[str, dict[str, str]]:
    """Parameter name → {notebook stem: declared type name} as papermill infers it
    (``"float"``, ``"int"``, ``"bool"``, ``"str"``, ``"list"`` …)."""
    import papermill as pm

    out: dict[str, dict[str, str]] = {}
    for nb in nbs:
        for name, info in pm.inspect_notebook(str(nb)).items():
            out.setdefault(name, {})[Path(nb).stem] = str(info.get("inferred_type_name") or "None")
    return out


def _fail(name: str, value: Any, source: str, kind: str, where: dict[str, str], why: str) -> VlmkitError:
    nbs = ", ".join(sorted(where))
    example = {"float": "1e-5", "int": "200", "bool": "true", "str": "text"}[kind]
    return VlmkitError(f"parameter {name!r} ({source}): {value!r} {why}; notebook {nbs} declares "
                       f"`{name}: {kind}` (e.g. -p {name} {example})")


def coerce(name: str, value: Any, where: dict[str, str], source: str = "from -p", raw: str | None = None) -> Any:
    """``value`` converted to the type ``where`` (notebook stem → declared type) gives ``name``.

    ``raw`` is the text the user typed (``-p``), used for ``str`` parameters so that
    ``-p pretrained 1.0`` stays ``"1.0"``.  Unknown, list-typed or inconsistently declared
    parameters are returned unchanged."""
    kinds = set(where.values())
    if len(kinds) != 1 or (kind := kinds.pop()) not in SCALARS:
        return value
    if kind == "str":
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, (bool, int, float)):
            return raw if raw is not None else str(value)
        raise _fail(name, value, source, kind, where, f"is a {type(value).__name__}, not text")
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise _fail(name, value, source, kind, where, "is not true or false")
    if isinstance(value, bool):  # YAML's yes/no/true/false are not numbers
        raise _fail(name, value, source, kind, where, "is a bool, not a number")
    number: float | int
    if isinstance(value, (int, float)):
        number = value
    elif isinstance(value, str):
        text = value.strip().replace("_", "")
        try:
            number = int(text) if kind == "int" and text.lstrip("+-").isdigit() else float(text)
        except ValueError:
            raise _fail(name, value, source, kind, where, "is not a number") from None
    else:
        raise _fail(name, value, source, kind, where, f"is a {type(value).__name__}, not a number")
    if kind == "float":
        return float(number)
    if isinstance(number, float):
        if not math.isfinite(number) or not number.is_integer():
            raise _fail(name, value, source, kind, where, "is not a whole number")
        return int(number)
    return number


def coerce_all(params: dict[str, Any], types: dict[str, dict[str, str]], sources: dict[str, str] | None = None,
               raw: dict[str, str] | None = None) -> dict[str, Any]:
    """Every entry of ``params`` through :func:`coerce` (names no notebook declares unchanged);
    ``sources`` says where each came from, ``raw`` the text typed after ``-p``."""
    sources, raw = sources or {}, raw or {}
    return {k: (coerce(k, v, types[k], sources.get(k, "given"), raw.get(k)) if k in types else v)
            for k, v in params.items()}
