"""The SQLite backend, the default: a mirror in one file that any SQLite client can query and edit.

connection.py (the file, its pragmas, write transactions under BEGIN IMMEDIATE, the version in
PRAGMA user_version), schema.py (FTS5 search, triggers reading sync_control, the migrations of
older files), first_import.py (indexes and search built once at a first import's end),
reading.py (read-only opens for status), watch.py (the daemon's view between runs, by
PRAGMA data_version), file_lock.py (one daemon, one sync at a time, by flock).
"""
