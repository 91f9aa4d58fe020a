"""The benchmarks are scripts beside the package, not part of it, so the import-linter contracts
(pyproject.toml ``[tool.importlinter]``, run by ``make lint``) do not see them: here they are read
for imports of the test suite, which they must never make (what a benchmark shares with a test
lives in ``benchmarks/`` or ``src/``)."""

from __future__ import annotations

import ast

from tests.support.project import PROJECT_ROOT


def _imported_modules(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def test_the_benchmarks_do_not_import_the_tests():
    scripts = sorted((PROJECT_ROOT / "benchmarks").rglob("*.py"))
    assert len(scripts) > 10  # the folder was found
    found = [
        f"{path.relative_to(PROJECT_ROOT)}:{line} imports {module}"
        for path in scripts
        for line, module in _imported_modules(ast.parse(path.read_text(), str(path)))
        if module == "tests" or module.startswith("tests.")
    ]
    assert not found, found
