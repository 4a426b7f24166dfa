"""The documentation's code still names things that exist: every ``from vlmkit… import …``
line of the Python blocks in README.md and docs/*.md imports, and every relative link
points at a file of the repository."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "data" / "README.md", ROOT / "bench" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.S)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_in_doc_code_exist(doc):
    for block in _python_blocks(doc.read_text()):
        tree = ast.parse(block)  # the blocks must at least be valid Python
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vlmkit") or \
                    isinstance(node, ast.Import) and any(a.name.startswith("vlmkit") for a in node.names):
                exec(compile(ast.Module([node], type_ignores=[]), str(doc), "exec"), {})  # ImportError names it


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc):
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
        if "://" in target:
            continue
        assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"
