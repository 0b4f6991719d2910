"""Full-text search on PostgreSQL: a tsvector per customer in `customers_fts`, under a GIN index.

A table beside customers rather than a column in it, so `customers` has the same columns on both
backends (SQLite's search index is the customers_fts virtual table). The 'simple' configuration
(lower-cased words, no stemming) suits what people search a CRM for: names, emails, phones,
company and address, where an English stemmer would turn "Smiths" into "smith".

    SELECT c.* FROM customers c JOIN customers_fts f ON f.id = c.id
    WHERE f.document @@ plainto_tsquery('simple', 'smith');
"""

from __future__ import annotations

from mirror.store.portable_schema import SEARCHED_COLUMNS

_document = " || ' ' || ".join(f"coalesce(new.{c}, '')" for c in SEARCHED_COLUMNS)

STATEMENTS: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS customers_fts (
        id INTEGER PRIMARY KEY REFERENCES customers (id) ON DELETE CASCADE ON UPDATE CASCADE,
        document tsvector NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS ix_customers_fts_document ON customers_fts USING GIN (document)",
    # Whoever writes the row, the daemon or a person: the index follows (a delete cascades).
    # As its owner (the daemon's role), so a person who may edit customers but only read
    # customers_fts still keeps the index current.
    f"""CREATE OR REPLACE FUNCTION spmirror_search_document() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO customers_fts (id, document) VALUES (new.id, to_tsvector('simple', {_document}))
        ON CONFLICT (id) DO UPDATE SET document = excluded.document;
    RETURN NULL;
END $$""",
    f"""CREATE TRIGGER customers_search AFTER INSERT OR UPDATE OF {", ".join(SEARCHED_COLUMNS)} ON customers
    FOR EACH ROW EXECUTE FUNCTION spmirror_search_document()""",
)
