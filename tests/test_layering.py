"""Imports run one way, `models <- app <- worker`: each package may import only from the ones left of it.

`models/` is pure PyTorch and imports neither `app` nor `worker`. `app/` never imports `worker`: the API
sends tasks by name through `app.queue`. The one exception is the process entry point `app/cli.py`,
which turns its own process into a worker (`rnnlab worker`).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FORBIDDEN = {"models": {"app", "worker"}, "app": {"worker"}, "worker": set()}
ALLOWED = {("app/cli.py", "worker")}


def imported_packages(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, top-level package) of every absolute import, wherever it is (lazy imports included)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]


def violations() -> list[str]:
    found = []
    for package, forbidden in FORBIDDEN.items():
        for path in sorted((REPO / package).rglob("*.py")):
            name = path.relative_to(REPO).as_posix()
            for line, imported in imported_packages(ast.parse(path.read_text(), filename=name)):
                if imported in forbidden and (name, imported) not in ALLOWED:
                    found.append(f"{name}:{line} imports {imported}")
    return found


def test_imports_run_models_app_worker() -> None:
    found = violations()
    assert not found, "imports against the layering:\n" + "\n".join(found)


def test_the_walk_sees_lazy_imports() -> None:
    # app/cli.py starts a worker through an import inside a function: the walk must see it.
    cli = ast.parse((REPO / "app" / "cli.py").read_text())
    assert "worker" in {package for _, package in imported_packages(cli)}
