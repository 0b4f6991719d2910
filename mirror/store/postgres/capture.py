"""PL/pgSQL triggers: a person's edit from any PostgreSQL client is captured, and wakes the daemon.

The daemon's own writes run with `SET LOCAL spmirror.writing = 'on'` (connection.py), which
lasts for its transaction only and which no other session can see: the triggers skip exactly
those writes. Read with current_setting(..., true) so a session that never set it reads NULL
instead of failing.

Functions that write tables people may only read (links, the search index) run as their owner,
the daemon's role (SECURITY DEFINER), with the mirror's schema as their search_path, so a person
granted only what README "Running against PostgreSQL" lists can still edit customers.

The same rules as SQLite's triggers (mirror/store/sqlite/schema.py), in PostgreSQL's words:
- customers_mark_pending: an edit that really changes a customer column makes the row
  'pending' (and clears an old error); a row in conflict stays in conflict.
- customers_keep_remote_id: pkcustomerid, once set, is Solar Proof's id and cannot change.
- customers_link_rows / <child>_link_row: notes, projects and history point at their customer's
  row (customer_row) as rows come and go. (ON DELETE SET NULL unlinks: keys are always enforced.)
- customers_notify: one NOTIFY per statement a person runs on customers, delivered at COMMIT,
  its payload the table's schema (a database may hold several mirrors); the daemon LISTENs
  (listen.py) and pushes at once instead of polling.
"""

from __future__ import annotations

from mirror.customer import CUSTOMER_COLUMNS, LABEL_COLUMNS

CHANNEL = "spmirror_edits"
NOT_THE_DAEMON = "current_setting('spmirror.writing', true) IS DISTINCT FROM 'on'"

_CHILDREN = (("customer_notes", "id"), ("customer_projects", "project_id"), ("customer_changes", "id"))
_USER_COLUMNS = CUSTOMER_COLUMNS + LABEL_COLUMNS
_changed = "\n            OR ".join(f"old.{c} IS DISTINCT FROM new.{c}" for c in _USER_COLUMNS)

FUNCTIONS: tuple[str, ...] = (
    f"""CREATE OR REPLACE FUNCTION spmirror_mark_pending() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF {NOT_THE_DAEMON} AND old.sync_state <> 'conflict' AND (
            {_changed}) THEN
        new.sync_state := 'pending';
        new.sync_error := NULL;
    END IF;
    RETURN new;
END $$""",
    f"""CREATE OR REPLACE FUNCTION spmirror_keep_remote_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF old.pkcustomerid IS NOT NULL AND new.pkcustomerid IS DISTINCT FROM old.pkcustomerid
            AND {NOT_THE_DAEMON} THEN
        RAISE EXCEPTION 'pkcustomerid is Solar Proof''s id for this customer and cannot be changed; to add a customer, INSERT a row with pkcustomerid NULL';
    END IF;
    RETURN new;
END $$""",
    f"""CREATE OR REPLACE FUNCTION spmirror_link_rows() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
{"".join(f"        UPDATE {child} SET customer_row = NULL WHERE customer_row = old.id AND old.id IS DISTINCT FROM new.id;{chr(10)}"
         for child, _key in _CHILDREN)}    END IF;
    IF new.pkcustomerid IS NOT NULL THEN
{"".join(f"        UPDATE {child} SET customer_row = new.id WHERE pkcustomerid = new.pkcustomerid "
         f"AND customer_row IS DISTINCT FROM new.id;{chr(10)}" for child, _key in _CHILDREN)}    END IF;
    RETURN NULL;
END $$""",
    """CREATE OR REPLACE FUNCTION spmirror_link_new_child() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF new.customer_row IS NULL AND new.pkcustomerid IS NOT NULL THEN
        new.customer_row := (SELECT id FROM customers WHERE pkcustomerid = new.pkcustomerid);
    END IF;
    RETURN new;
END $$""",
    # A row a person inserts with an id of their own (a CSV restored with its id column, an
    # INSERT ... SELECT from a backup) leaves customers' id sequence behind it, and the daemon's
    # next INSERT would collide with it: the sequence catches up at once. As the owner, because
    # people are granted USAGE on the sequence, not the UPDATE that setval needs.
    """CREATE OR REPLACE FUNCTION spmirror_id_sequence_follows() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    highest bigint := (SELECT max(id) FROM customers);
    sequence regclass := pg_get_serial_sequence('customers', 'id')::regclass;
BEGIN
    IF highest > coalesce(pg_sequence_last_value(sequence), 0) THEN
        PERFORM setval(sequence, highest);
    END IF;
    RETURN NULL;
END $$""",
    f"""CREATE OR REPLACE FUNCTION spmirror_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF {NOT_THE_DAEMON} THEN
        PERFORM pg_notify('{CHANNEL}', TG_TABLE_SCHEMA);
    END IF;
    RETURN NULL;
END $$""",
)

_user_cols = ", ".join(_USER_COLUMNS)

TRIGGERS: tuple[str, ...] = (
    f"""CREATE TRIGGER customers_mark_pending BEFORE UPDATE OF {_user_cols} ON customers
    FOR EACH ROW EXECUTE FUNCTION spmirror_mark_pending()""",
    """CREATE TRIGGER customers_keep_remote_id BEFORE UPDATE OF pkcustomerid ON customers
    FOR EACH ROW EXECUTE FUNCTION spmirror_keep_remote_id()""",
    """CREATE TRIGGER customers_link_rows AFTER INSERT OR UPDATE OF id, pkcustomerid ON customers
    FOR EACH ROW EXECUTE FUNCTION spmirror_link_rows()""",
    *(
        f"""CREATE TRIGGER {child}_link_row BEFORE INSERT ON {child}
    FOR EACH ROW EXECUTE FUNCTION spmirror_link_new_child()"""
        for child, _key in _CHILDREN
    ),
    """CREATE TRIGGER customers_notify AFTER INSERT OR UPDATE OR DELETE ON customers
    FOR EACH STATEMENT EXECUTE FUNCTION spmirror_notify()""",
    f"""CREATE TRIGGER customers_id_sequence_follows AFTER INSERT ON customers
    FOR EACH STATEMENT WHEN ({NOT_THE_DAEMON}) EXECUTE FUNCTION spmirror_id_sequence_follows()""",
)
