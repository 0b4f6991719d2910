"""The mirror's schema version, shared by both backends: SQLite keeps it in `PRAGMA user_version`,
PostgreSQL in its `spmirror_schema` table. A backend's migration list takes version n to n+1."""

SCHEMA_VERSION = 4
