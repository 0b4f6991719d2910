"""The codebase's own rules: imports flow one way, httpx and SQLAlchemy each have one home,
the planner is pure, and every command is documented."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "mirror"


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def modules() -> dict[str, set[str]]:
    result = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        result[name] = imports_of(path)
    return result


# Lower layers may not import higher ones.
FORBIDDEN = {
    "mirror.errors": ("mirror.",),
    "mirror.customer": ("mirror.api", "mirror.store", "mirror.sync", "mirror.commands", "mirror.wire"),
    "mirror.wire": ("mirror.api", "mirror.store", "mirror.sync", "mirror.commands"),
    "mirror.api": ("mirror.store", "mirror.sync", "mirror.commands", "mirror.simulator"),
    "mirror.walk": ("mirror.store", "mirror.sync", "mirror.commands"),
    "mirror.store": ("mirror.api", "mirror.sync", "mirror.commands", "mirror.walk"),
    "mirror.merge": ("mirror.api", "mirror.store", "mirror.sync", "mirror.commands"),
    "mirror.sync.planner": ("mirror.api", "mirror.store", "mirror.walk", "mirror.commands", "httpx", "sqlite3"),
    "mirror.sync": ("mirror.commands",),
}


def matches(name: str, banned: str) -> bool:
    """`banned` names a module and its submodules; a trailing dot names a whole namespace."""
    return name.startswith(banned) if banned.endswith(".") else name == banned or name.startswith(banned + ".")


def violations_in(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for module, imported in graph.items():
        for layer, banned in FORBIDDEN.items():
            if module == layer or module.startswith(layer + "."):
                found += [f"{module} imports {name}" for name in sorted(imported)
                          if any(matches(name, b) for b in banned)]
    return found


def test_imports_flow_one_way():
    """No module imports from a layer above its own."""
    assert violations_in(modules()) == []


def test_the_layer_check_catches_a_violation():
    """The check itself flags an upward import (so a passing run means something)."""
    assert violations_in({"mirror.api": {"mirror.store"}, "mirror.sync.planner": {"sqlite3"}}) == [
        "mirror.api imports mirror.store", "mirror.sync.planner imports sqlite3"]


@pytest.mark.parametrize(("library", "homes"), [
    ("httpx", {"mirror.api"}),
    # The store, and each backend's connection for its own dialect (DDL, URL).
    ("sqlalchemy", {"mirror.models", "mirror.store", "mirror.store.sqlite.connection",
                    "mirror.store.postgres.connection"}),
    ("sqlmodel", {"mirror.models", "mirror.store"}),
    ("apscheduler", {"mirror.daemon"}),
    ("prometheus_client", {"mirror.metrics"}),
    ("uvicorn", {"mirror.webhook_receiver"}),
    ("orjson", {"mirror.wire.page"}),
    ("zstandard", {"mirror.store.payloads"}),
])
def test_each_third_party_library_has_one_home(library, homes):
    """Only the named modules import the library (the simulator, a separate program, aside)."""
    users = {m for m, imported in modules().items()
             if not m.startswith("mirror.simulator") and any(n == library or n.startswith(library + ".") for n in imported)}
    assert users <= homes, users


def test_psycopg_lives_in_the_postgresql_backend():
    """psycopg is imported only under mirror/store/postgres/, so a SQLite mirror never loads it."""
    users = {m for m, imported in modules().items() if any(n == "psycopg" or n.startswith("psycopg.") for n in imported)}
    assert users and all(m.startswith("mirror.store.postgres.") for m in users), users


def test_structlog_is_configured_in_one_place():
    """Only mirror.logs calls structlog.configure."""
    callers = [p for p in PACKAGE.rglob("*.py") if "structlog.configure(" in p.read_text()]
    assert [p.relative_to(ROOT).as_posix() for p in callers] == ["mirror/logs.py"]


def test_every_command_is_in_the_readme():
    """Each subcommand of spmirror appears in the README's command table."""
    from mirror.cli import build_parser

    readme = (ROOT / "README.md").read_text()
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for name in commands:
        assert f"`spmirror {name}" in readme, name


def test_python_dash_m_mirror_runs_the_cli():
    """`python -m mirror --version` is the same program as `spmirror`."""
    out = subprocess.run([sys.executable, "-m", "mirror", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("spmirror ")
