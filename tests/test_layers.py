"""The package's imports point one way: no import circle between modules, no module imports a
higher layer than its own, nothing imports the entry point ``vlmkit.cli``.

The layers are read from docs/CONVENTIONS.md ("Layers": a numbered list, lowest first, of
backticked module or package names), so the document and the check cannot drift apart; every
module of the package must fall in one of them.  Imports are read from the source with ``ast``
— module-level and function-level alike (a lazy import inside a function is still a
dependency), ``TYPE_CHECKING`` blocks included — without importing anything.  The checker is
itself tested on a small package planted in ``tmp_path``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONVENTIONS = ROOT / "docs" / "CONVENTIONS.md"


# --------------------------------------------------------------------------- the checker


def package_modules(pkg_dir: Path) -> dict[str, tuple[Path, bool]]:
    """Dotted module name → (file, is a package ``__init__``) for every ``.py`` under ``pkg_dir``."""
    mods = {}
    for path in sorted(pkg_dir.rglob("*.py")):
        parts = list(path.relative_to(pkg_dir.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        mods[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return mods


def import_graph(pkg_dir: Path) -> dict[str, dict[str, int]]:
    """Module → {imported module of the same package: line of the first such import}.

    ``from a import b`` depends on ``a.b`` when that is a module, else on ``a``; an import of a
    name inside a module (``import a.b.c`` where ``c`` is a function) depends on the deepest
    module of the dotted path.  A package's own submodules importing names from the package
    (``from . import x``, x a submodule) do not make the submodule depend on the package."""
    mods = package_modules(pkg_dir)
    top = pkg_dir.name

    def owner(dotted: str) -> str | None:
        while dotted and dotted not in mods:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    graph: dict[str, dict[str, int]] = {}
    for name, (path, is_pkg) in mods.items():
        base = name.split(".") if is_pkg else name.split(".")[:-1]
        deps: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    if node.level - 1 > len(base):
                        raise AssertionError(f"{path}:{node.lineno}: relative import beyond the top-level package")
                    module = ".".join(base[: len(base) - (node.level - 1)] + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in mods else module for a in node.names]
            for t in targets:
                dep = owner(t) if t == top or t.startswith(top + ".") else None
                if dep is not None and dep != name:
                    deps.setdefault(dep, node.lineno)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The import circles: every strongly connected component of more than one module
    (Tarjan), each as a closed path ``[a, b, …, a]`` through its modules, sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    comps: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return sorted(_closed_path(graph, c) for c in comps)


def _closed_path(graph: dict[str, dict[str, int]], comp: list[str]) -> list[str]:
    """A shortest circle through the first module of ``comp`` (breadth-first inside it)."""
    start, members = comp[0], set(comp)
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v]):
                if w == start:
                    chain = [v]
                    while chain[-1] != start:
                        chain.append(prev[chain[-1]])
                    return [*reversed(chain), start]
                if w in members and w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no circle through {start}")  # pragma: no cover (an SCC always has one)


def read_layers(text: str) -> list[list[str]]:
    """The numbered list under the ``## Layers`` heading: one list of backticked names per item."""
    m = re.search(r"^## Layers\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    if not m:
        raise AssertionError("docs/CONVENTIONS.md has no '## Layers' section")
    layers = [re.findall(r"`([\w.]+)`", line) for line in m.group(1).splitlines() if re.match(r"\d+\. ", line)]
    if not layers or not all(layers):
        raise AssertionError("the Layers section needs a numbered list, each item naming modules in backticks")
    return layers


def layer_of(module: str, layers: list[list[str]]) -> int | None:
    """The layer (0 = lowest) of the longest listed name that is ``module`` or a package above
    it; the top-level package's own name stands for its ``__init__`` only."""
    best: tuple[int, int] | None = None
    for k, names in enumerate(layers):
        for n in names:
            if (module == n or ("." in n and module.startswith(n + "."))) and (best is None or len(n) > best[0]):
                best = (len(n), k)
    return None if best is None else best[1]


def violations(pkg_dir: Path, layers: list[list[str]], entry: tuple[str, ...] = ()) -> list[str]:
    """Every breach of the rules, one line each: a module in no layer, an import of a higher
    layer (file, line, both layers), an import of an ``entry`` module, an import circle."""
    graph = import_graph(pkg_dir)
    mods = package_modules(pkg_dir)
    out = []
    for mod in sorted(graph):
        if layer_of(mod, layers) is None:
            out.append(f"{mod}: in no layer of docs/CONVENTIONS.md")
    for mod, deps in sorted(graph.items()):
        mine = layer_of(mod, layers)
        for dep, line in sorted(deps.items()):
            where = f"{mods[mod][0].relative_to(pkg_dir.parent)}:{line}"
            theirs = layer_of(dep, layers)
            if dep in entry:
                out.append(f"{where}: {mod} imports the entry point {dep}")
            elif mine is not None and theirs is not None and theirs > mine:
                out.append(f"{where}: {mod} (layer {mine + 1}) imports {dep} (layer {theirs + 1}, higher)")
    out += [f"import circle: {' -> '.join(c)}" for c in cycles(graph)]
    return out


# --------------------------------------------------------------------------- the package


def test_vlmkit_imports_point_one_way():
    layers = read_layers(CONVENTIONS.read_text())
    assert "vlmkit.cli" in layers[-1], "the entry point vlmkit.cli belongs to the top layer"
    problems = violations(ROOT / "vlmkit", layers, entry=("vlmkit.cli",))
    assert not problems, "\n".join(problems)


def test_every_layer_name_is_a_module_of_the_package():
    mods = package_modules(ROOT / "vlmkit")
    names = [n for layer in read_layers(CONVENTIONS.read_text()) for n in layer]
    assert len(names) == len(set(names)), "a name listed in two layers"
    assert not [n for n in names if n not in mods], "layers name modules that do not exist"


def test_the_import_reader_sees_lazy_relative_and_from_imports():
    graph = import_graph(ROOT / "vlmkit")
    assert "vlmkit.rundir" in graph["vlmkit.report"]  # module level, relative
    assert "vlmkit.workbook" in graph["vlmkit.kernel"]  # inside a function only
    assert "vlmkit.data.spec" in graph["vlmkit.train.loop"]  # two dots, inside a function
    assert "vlmkit.train" not in graph["vlmkit.train.loop"]  # from .config import …: the submodule, not the package


# --------------------------------------------------------------------------- the checker on a planted package


def _plant(root: Path, files: dict[str, str]) -> Path:
    for rel, src in files.items():
        p = root / "toy" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(src)
    return root / "toy"


LAYERS_MD = """# Conventions

## Layers
1. `toy`, `toy.base`
2. `toy.mid`
3. `toy.top`, `toy.cli`

## Other
1. `toy.never` is not a layer
"""

CLEAN = {
    "__init__.py": "",
    "base.py": "import os\n",
    "mid/__init__.py": "from .a import f\n",
    "mid/a.py": "from ..base import os\n\ndef f():\n    from . import b\n    return b\n",
    "mid/b.py": "from toy import base\n",
    "top.py": "from .mid import f\nimport toy.base\n",
    "cli.py": "from . import top\n",
}


def test_checker_passes_a_clean_package(tmp_path):
    layers = read_layers(LAYERS_MD)
    assert layers == [["toy", "toy.base"], ["toy.mid"], ["toy.top", "toy.cli"]]
    assert violations(_plant(tmp_path, CLEAN), layers, entry=("toy.cli",)) == []


@pytest.mark.parametrize("change, expected", [
    ({"base.py": "def g():\n    from .mid.a import f  # a lazy import upwards\n    return f\n"},
     ["toy/base.py:2: toy.base (layer 1) imports toy.mid.a (layer 2, higher)",
      "import circle: toy.base -> toy.mid.a -> toy.base"]),
    ({"mid/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from toy.top import f\n"},
     ["toy/mid/b.py:3: toy.mid.b (layer 2) imports toy.top (layer 3, higher)",
      "import circle: toy.mid -> toy.mid.a -> toy.mid.b -> toy.top -> toy.mid"]),
    ({"top.py": "from .cli import main\n"}, ["toy/top.py:1: toy.top imports the entry point toy.cli",
                                             "import circle: toy.cli -> toy.top -> toy.cli"]),
    ({"mid/b.py": "from .a import f\n"}, ["import circle: toy.mid.a -> toy.mid.b -> toy.mid.a"]),
    ({"extra.py": "x = 1\n"}, ["toy.extra: in no layer of docs/CONVENTIONS.md"]),
])
def test_checker_fails_on_a_planted_violation(tmp_path, change, expected):
    problems = violations(_plant(tmp_path, {**CLEAN, **change}), read_layers(LAYERS_MD), entry=("toy.cli",))
    assert problems == expected


def test_circle_paths_are_closed_and_shortest():
    graph = {"a": {"b": 1}, "b": {"c": 1, "a": 1}, "c": {"a": 1}, "d": {"a": 1}}
    assert cycles(graph) == [["a", "b", "a"]]
    assert cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b": 1}, "b": {}}) == []
