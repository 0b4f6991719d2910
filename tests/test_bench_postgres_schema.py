"""bench/postgres_schema.py: the URL a benchmark sample's schema is reached by, as libpq reads it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

_PATH = Path(__file__).resolve().parent.parent / "bench" / "postgres_schema.py"
_spec = importlib.util.spec_from_file_location("bench_postgres_schema", _PATH)
postgres_schema = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = postgres_schema
_spec.loader.exec_module(postgres_schema)


def test_schema_url_puts_the_schema_on_the_search_path():
    """libpq reads the added option as `-csearch_path=<schema>`; host, user and database stay."""
    url = postgres_schema.schema_url("postgresql://postgres@127.0.0.1:5432/test", "spbench_1_2")
    assert "options=-csearch_path%3Dspbench_1_2" in url
    assert conninfo_to_dict(url) == {"host": "127.0.0.1", "port": "5432", "user": "postgres", "dbname": "test",
                                     "options": "-csearch_path=spbench_1_2"}


def test_schema_url_keeps_the_other_parameters_and_options():
    """An sslmode and an options the URL already carried are kept; the search path is added to the options."""
    url = postgres_schema.schema_url(
        "postgresql://u:secret@db.example:6543/crm?sslmode=require&options=-cstatement_timeout%3D5000", "s")
    assert conninfo_to_dict(url) == {"host": "db.example", "port": "6543", "user": "u", "password": "secret",
                                     "dbname": "crm", "sslmode": "require",
                                     "options": "-cstatement_timeout=5000 -csearch_path=s"}


@pytest.mark.parametrize(("text", "expected"), [
    ("postgresql://postgres@127.0.0.1/test", True), ("postgres://h/db", True), ("POSTGRESQL://h/db", True),
    ("sqlite:///mirror.db", False), ("mirror.db", False), ("/tmp/postgresql.db", False),
])
def test_only_postgres_urls_are_taken_for_a_server(text, expected):
    """--db takes a postgresql:// (or postgres://) URL; a path or a sqlite:/// URL is not one."""
    assert postgres_schema.is_postgres_url(text) is expected
