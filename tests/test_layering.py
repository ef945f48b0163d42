"""Imports run one way, `models <- app <- worker`: each package may import only from the ones left of it.

`models/` is pure PyTorch and imports neither `app` nor `worker`. `app/` never imports `worker`: the API
sends tasks by name through `app.core.queue`. The one exception is the process entry point `app/cli.py`,
which turns its own process into a worker (`rnnlab worker`) and adds the client's subcommands.

`client/` speaks only HTTP: it imports nothing of the server and, of `models`, only the torch-free
training configs (its flags). Migration revisions are frozen snapshots: they import no app code, so a
later change to the app cannot change what an old revision does; `migrations/env.py`, the bridge that
hands Alembic the app's database URL and tables, is the one file there that imports `app`.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# The packages and modules (with their submodules) each folder may not import.
FORBIDDEN = {
    "models": {"app", "worker", "client"},
    "app": {"worker", "client"},
    "worker": {"client"},
    "client": {"app", "worker", "models", "torch"},
    "migrations": {"app", "worker", "models", "client"},
}
# (file or folder, module) pairs allowed despite FORBIDDEN.
ALLOWED = {
    ("app/cli.py", "worker"),
    ("app/cli.py", "client"),
    ("client", "models.config"),
    ("migrations/env.py", "app"),
}


def imported_modules(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, module) of every absolute import, wherever it is (lazy imports included)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def _within(name: str, prefix: str) -> bool:
    """Whether `name` is `prefix` or inside it, for module names ("a.b") and paths ("a/b.py")."""
    return name == prefix or name.startswith(f"{prefix}.") or name.startswith(f"{prefix}/")


def _allowed(path: str, module: str) -> bool:
    return any(_within(path, where) and _within(module, allowed) for where, allowed in ALLOWED)


def violations() -> list[str]:
    found = []
    for package, forbidden in FORBIDDEN.items():
        for path in sorted((REPO / package).rglob("*.py")):
            name = path.relative_to(REPO).as_posix()
            for line, module in imported_modules(ast.parse(path.read_text(), filename=name)):
                if any(_within(module, f) for f in forbidden) and not _allowed(name, module):
                    found.append(f"{name}:{line} imports {module}")
    return found


def test_imports_run_models_app_worker() -> None:
    found = violations()
    assert not found, "imports against the layering:\n" + "\n".join(found)


def test_the_walk_sees_lazy_imports() -> None:
    # app/cli.py starts a worker through an import inside a function: the walk must see it.
    cli = ast.parse((REPO / "app" / "cli.py").read_text())
    assert "worker.celery_app" in {module for _, module in imported_modules(cli)}


def test_the_rules_tell_a_module_from_its_package() -> None:
    assert _allowed("client/flags.py", "models.config")
    assert not _allowed("client/flags.py", "models.config_extra")
    assert not _allowed("client/flags.py", "models.sample")
    assert not _allowed("migrations/versions/0001_initial.py", "app.services.builtin")


@pytest.mark.parametrize("module", ["client", "client.commands"])
def test_importing_the_client_loads_neither_the_server_nor_torch(module: str) -> None:
    # A fresh interpreter: this one has imported app and torch long ago.
    probe = (
        f"import sys, {module}; print(sorted({{m.split('.')[0] for m in sys.modules}} & {{'app', 'torch'}}))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "[]", loaded.stderr
