"""The PostgreSQL backend: a mirror in a shared database for a team (SPMIRROR_DB=postgresql://...).

connection.py (the session, transactions, the `?` placeholders the store's SQL is written in),
schema.py (tables, views, the version table and its upgrades), capture.py (PL/pgSQL triggers),
search.py (tsvector and GIN), listen.py (LISTEN: the daemon's wake-up), advisory_lock.py (one
daemon across hosts, a standby waiting), reading.py (read-only sessions for status). psycopg 3 is imported only here.
"""
