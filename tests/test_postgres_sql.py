"""The store's SQL, written once with `?` marks, as PostgreSQL receives it (no server needed)."""

from __future__ import annotations

import pytest

from mirror.store.postgres.connection import _translated

HISTORY = ("INSERT INTO customer_changes (changed_at, pkcustomerid, field, old_value, new_value, source, run_id) "
           "VALUES (?, ?, ?, ?, ?, ?, ?)")


@pytest.mark.parametrize(("sql", "sent"), [
    ("SELECT ? FROM t WHERE a = ?", "SELECT %s FROM t WHERE a = %s"),
    ("SELECT 'a?b', ?", "SELECT 'a?b', %s"),
    ("SELECT 'it''s?', ?", "SELECT 'it''s?', %s"),
    ('SELECT "odd""name?" FROM t WHERE x = ?', 'SELECT "odd""name?" FROM t WHERE x = %s'),
    ("SELECT ? -- don't ask?\n, ?", "SELECT %s -- don't ask?\n, %s"),
    ("SELECT ? /* a ? here */", "SELECT %s /* a ? here */"),
    ("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 WHERE 'x' LIKE '%?' $$",
     "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 WHERE 'x' LIKE '%%?' $$"),
    ("SELECT $body$ ? $body$, ?", "SELECT $body$ ? $body$, %s"),
    ("SELECT a FROM t WHERE b LIKE 'x%' AND c % 2 = ?", "SELECT a FROM t WHERE b LIKE 'x%%' AND c %% 2 = %s"),
])
def test_question_marks_become_placeholders_only_outside_text_comments_and_bodies(sql, sent):
    assert _translated(sql)[0] == sent


def test_the_typed_history_values_are_found_by_their_columns():
    assert _translated(HISTORY)[1] == (3, 4)
    upsert = ("INSERT INTO unconfirmed_writes (pkcustomerid, field, sent_value, sent_at, run_id) VALUES (?, ?, ?, ?, ?) "
              "ON CONFLICT (pkcustomerid, field) DO UPDATE SET sent_value = excluded.sent_value")
    assert _translated(upsert)[1] == (2,)
    assert _translated("INSERT INTO customers (customerfirstname) VALUES (?)")[1] == ()


@pytest.mark.parametrize("sql", [
    "INSERT INTO customer_changes (changed_at, old_value) SELECT ?, ?",
    "INSERT INTO customer_changes (changed_at, old_value) VALUES (?, ?), (?, ?)",
    "INSERT INTO unconfirmed_writes VALUES (?, ?, ?, ?, ?)",
])
def test_an_insert_of_typed_values_it_cannot_read_is_refused_not_sent_unwrapped(sql):
    """Sent as it is, a number bound for a jsonb column fails on the server, or a text is stored
    as JSON text of another type: refuse the statement, naming what it must look like."""
    with pytest.raises(ValueError, match="must name its columns and bind one row of VALUES"):
        _translated(sql)
