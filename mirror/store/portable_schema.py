"""Schema text both backends run as it is: the lookup rows, the labelled view, the table of API
findings. Each backend's schema.py adds what its dialect says its own way (triggers, full-text
search, the version record, blobs)."""

from __future__ import annotations

from mirror.vocabulary import STATUS_LABELS, TYPE_LABELS, TYPE_WRITE_WORDS

# The customer columns full-text search covers (SQLite: FTS5; PostgreSQL: tsvector and GIN).
SEARCHED_COLUMNS: tuple[str, ...] = (
    "customerfirstname",
    "customersurname",
    "customeremail",
    "customerphone1",
    "customerphone2",
    "customercompanyname",
    "customer_site_address",
)

# What `spmirror check` (or a mirror's first sync) found about the account's API, one row per
# finding (mirror/probe): the sync reads the page size from here. Raw SQL rather than a model:
# only mirror/store/api_facts.py reads and writes it. Shared by a new file and SQLite's step
# 3 -> 4, so both get the same table.
API_FINDINGS = """CREATE TABLE IF NOT EXISTS api_findings (
        key TEXT NOT NULL PRIMARY KEY,
        level TEXT NOT NULL CHECK (level IN ('ok', 'note', 'problem')),
        value_json TEXT,
        message TEXT NOT NULL,
        what_to_do TEXT,
        checked_at TEXT NOT NULL,
        source TEXT NOT NULL CHECK (source IN ('check', 'first_sync'))
    )"""

# Each customer with its labels (status, type, GST) and owner, for people and BI tools.
LABELED_VIEW_QUERY = """SELECT c.*,
           COALESCE(s.label, c.customer_status_text) AS status_label,
           COALESCE(t.label, c.customer_type_text) AS type_label,
           CASE c.customergstregistered WHEN 1 THEN 'GST Registered' WHEN 0 THEN 'Not GST Registered' END
               AS gst_label,
           TRIM(COALESCE(u.first_name, '') || ' ' || COALESCE(u.last_name, '')) AS owner_name,
           u.email AS owner_email
    FROM customers AS c
    LEFT JOIN customer_statuses AS s ON s.id = c.fkcustomerstatusid
    LEFT JOIN customer_types AS t ON t.id = c.fkcustomertypeid
    LEFT JOIN customer_base AS b ON b.pkcustomerid = c.pkcustomerid
    LEFT JOIN users AS u ON u.user_id = b.owner_user_id"""

LOOKUP_ROWS: tuple[str, ...] = (
    *(
        f"INSERT INTO customer_statuses (id, label) VALUES ({number}, '{label}') ON CONFLICT DO NOTHING"
        for number, label in STATUS_LABELS.items()
    ),
    *(
        f"INSERT INTO customer_types (id, label, write_word) VALUES ({number}, '{label}', "
        f"'{TYPE_WRITE_WORDS[number]}') ON CONFLICT DO NOTHING"
        for number, label in TYPE_LABELS.items()
    ),
)
