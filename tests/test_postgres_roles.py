"""README "Running against PostgreSQL": the roles and grants it lists, run as written.

The daemon's role owns the schema; a person with only the editors' grants edits and adds
customers from their own session, and the daemon pushes both. The SQL comes from the README's
own block, so the README cannot drift from what was tested.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from backends import postgres_server
from conftest import API_KEY

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)

README = Path(__file__).resolve().parent.parent / "README.md"


def _readme_grants() -> str:
    text = README.read_text()
    section = text[text.index("**Roles and grants.**"):text.index("**A hot standby.**")]
    return re.search(r"```sql\n(.*?)```", section, re.S).group(1)


def _with_names(sql: str, names: dict[str, str]) -> list[str]:
    """The README's statements with its role and schema names replaced by this test's."""
    for old, new in names.items():
        sql = re.sub(rf"\b{old}\b", new, sql)
    return [s.strip() for s in re.sub(r"--[^\n]*", "", sql).split(";") if s.strip()]


@pytest.fixture
def team(backend):
    """The README's roles, under names of this test's own, and a URL for each login."""
    import psycopg

    server = postgres_server()
    tag = uuid.uuid4().hex[:8]
    names = {"mirror_editors": f"spmt_editors_{tag}", "alice": f"spmt_alice_{tag}", "spmirror": f"spmt_daemon_{tag}",
             "mirror": f"spmt_mirror_{tag}"}
    statements = _with_names(_readme_grants(), names)
    before_sync = [s for s in statements if not s.upper().startswith("GRANT SELECT ON ALL")
                   and not s.upper().startswith(("GRANT INSERT", "GRANT USAGE ON SEQUENCE"))]
    after_sync = [s for s in statements if s not in before_sync]
    admin = psycopg.connect(server.url, autocommit=True)
    base = server.url.split("?")[0]
    host_part = base.split("@", 1)[1]

    def url_for(role: str) -> str:
        return f"postgresql://{role}@{host_part}?options=-csearch_path%3D{names['mirror']}"

    try:
        for statement in before_sync:
            admin.execute(statement)
        yield {"daemon": url_for(names["spmirror"]), "alice": url_for(names["alice"]), "admin": admin,
               "after_sync": after_sync, "schema": names["mirror"]}
    finally:
        admin.execute(f"DROP SCHEMA IF EXISTS {names['mirror']} CASCADE")
        for role in (names["alice"], names["mirror_editors"], names["spmirror"]):
            admin.execute(f"DROP OWNED BY {role} CASCADE") if _role_exists(admin, role) else None
            admin.execute(f"DROP ROLE IF EXISTS {role}")
        admin.close()


def _role_exists(admin, role: str) -> bool:
    return admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None


def _spmirror(url: str, sim, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPMIRROR_")}
    env.update(SPMIRROR_DB=url, SPMIRROR_API_URL=sim.url, SPMIRROR_API_KEY=API_KEY)
    return subprocess.run([sys.executable, "-m", "mirror", *args], env=env, capture_output=True, text=True, timeout=120)


def _as(url: str, *statements: str) -> None:
    """Statements run in a session of that login, in another process (as a person's client)."""
    program = ("import psycopg, sys\nwith psycopg.connect(sys.argv[1], autocommit=True) as c:\n"
               "    for s in sys.argv[2:]:\n        c.execute(s)\n")
    done = subprocess.run([sys.executable, "-c", program, url, *statements], capture_output=True, text=True,
                          timeout=60)
    if done.returncode != 0:
        raise PermissionError(done.stderr.strip().splitlines()[-1])


def test_a_person_with_the_readme_grants_edits_and_the_daemon_pushes(team, sim):
    first = _spmirror(team["daemon"], sim, "sync")
    assert first.returncode == 0, first.stderr
    for statement in team["after_sync"]:
        team["admin"].execute(statement)
    target = sim.account.ids()[3]
    _as(team["alice"],
        f"UPDATE customers SET customersurname = 'Teamwork' WHERE pkcustomerid = {target}",
        "INSERT INTO customers (customerfirstname, customersurname, customeremail, customerphone1, fkcustomertypeid) "
        "VALUES ('Alice', 'Added', 'alice.added@example.com', '0400 111 222', 2)")
    rows = team["admin"].execute(
        f"SELECT customersurname, sync_state FROM {team['schema']}.customers "
        f"WHERE customersurname IN ('Teamwork', 'Added') ORDER BY customersurname").fetchall()
    assert rows == [("Added", "pending"), ("Teamwork", "pending")]
    found = team["admin"].execute(
        f"SELECT count(*) FROM {team['schema']}.customers_fts WHERE document @@ plainto_tsquery('simple', 'teamwork')"
    ).fetchone()[0]
    assert found == 1  # the search index follows a person's edit, written as the daemon's role

    second = _spmirror(team["daemon"], sim, "sync")
    assert second.returncode == 0, second.stderr
    assert sim.account.get(target)["last_name"] == "Teamwork"
    assert sim.account.find_by_email("alice.added@example.com") is not None
    states = team["admin"].execute(f"SELECT DISTINCT sync_state FROM {team['schema']}.customers").fetchall()
    assert states == [("synced",)]


def test_a_person_cannot_write_what_the_daemon_owns(team, sim):
    assert _spmirror(team["daemon"], sim, "sync").returncode == 0
    for statement in team["after_sync"]:
        team["admin"].execute(statement)
    for statement in ("UPDATE customer_base SET customersurname = 'Forged'", "DELETE FROM customer_changes",
                      "UPDATE spmirror_schema SET version = 99"):
        with pytest.raises(PermissionError, match="permission denied"):
            _as(team["alice"], statement)
    _as(team["alice"], "SELECT count(*) FROM customer_base")  # reading is granted


def test_an_editor_cannot_borrow_the_daemons_role_through_a_temporary_table(team, sim):
    """The trigger functions that run as the daemon's role must not find a person's temporary
    table first: a temp `customers_fts` whose trigger grants its creator everything must not run
    as the daemon (it would, if pg_temp came first in their search_path)."""
    assert _spmirror(team["daemon"], sim, "sync").returncode == 0
    for statement in team["after_sync"]:
        team["admin"].execute(statement)
    alice = team["alice"].split("postgresql://", 1)[1].split("@", 1)[0]
    schema = team["schema"]
    _as(team["alice"],
        "CREATE TEMP TABLE customers_fts (id int PRIMARY KEY, document tsvector); "
        "GRANT ALL ON pg_temp.customers_fts TO PUBLIC; "
        "CREATE FUNCTION pg_temp.grab() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"EXECUTE 'GRANT ALL ON ALL TABLES IN SCHEMA {schema} TO {alice}'; RETURN NULL; END $$; "
        "CREATE TRIGGER grab AFTER INSERT OR UPDATE ON pg_temp.customers_fts "
        "FOR EACH ROW EXECUTE FUNCTION pg_temp.grab(); "
        "UPDATE customers SET customersurname = 'Shadowed' WHERE id = 2")
    may = team["admin"].execute(f"SELECT has_table_privilege(%s, '{schema}.customer_base', 'UPDATE')",
                                (alice,)).fetchone()[0]
    assert may is False
    found = team["admin"].execute(
        f"SELECT count(*) FROM {schema}.customers_fts WHERE document @@ plainto_tsquery('simple', 'shadowed')"
    ).fetchone()[0]
    assert found == 1  # the real index, not the temporary one, followed the edit


def test_a_role_that_may_only_read_is_told_so_in_one_line(team, sim):
    """spmirror run by a login with only the editors' grants (a BI role by mistake): exit 2 and
    one line naming the role and what it may not write, for sync and for a daemon before it
    would stand by."""
    assert _spmirror(team["daemon"], sim, "sync").returncode == 0
    for statement in team["after_sync"]:
        team["admin"].execute(statement)
    for command in (["sync"], ["run"]):
        result = _spmirror(team["alice"], sim, *command)
        assert result.returncode == 2, (command, result.stderr)
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 and "may read this mirror but not write customer_base" in errors[0], result.stderr
        assert "Traceback" not in result.stderr
