"""Where a mirror lives: a SQLite file (a path, or `sqlite:///path`) or a PostgreSQL database
(`postgresql://…`), as `SPMIRROR_DB`, `--db` or `[database] path`/`url` give it.

Everything that opens, locks or watches a mirror is given a Location and asks it for its
backend (mirror/store/sqlite or mirror/store/postgres); nothing above the store branches on
which one it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")


@dataclass(frozen=True)
class Location:
    """A mirror's address. `path` for SQLite; `url` (with its password) for PostgreSQL."""

    kind: str  # "sqlite" or "postgres"
    path: Path | None = None
    url: str | None = None

    @classmethod
    def parse(cls, value: str | Path | Location) -> Location:
        if isinstance(value, Location):
            return value
        if isinstance(value, Path):
            return cls("sqlite", path=value)
        text = str(value).strip()
        scheme = text.split("://", 1)[0].lower() if "://" in text else ""
        if scheme in POSTGRES_SCHEMES:
            return cls("postgres", url=text)
        if scheme == "sqlite":
            # sqlite:///relative/or/absolute as SQLAlchemy writes it: three slashes, then the path.
            return cls("sqlite", path=Path(text.split("://", 1)[1][1:] or "mirror.db"))
        return cls("sqlite", path=Path(text))

    @property
    def is_postgres(self) -> bool:
        return self.kind == "postgres"

    def __str__(self) -> str:
        """What messages and logs show: the path, or the URL with any password masked."""
        if self.path is not None:
            return str(self.path)
        return redact_url(self.url or "")

    def exists(self) -> bool:
        """Whether there is a database to read (a file; a server is asked when it is opened)."""
        return self.is_postgres or (self.path is not None and self.path.exists())


# libpq takes a password in the query string too (postgresql://user@host/db?password=...).
_PASSWORD_PARAMETERS = ("password", "sslpassword")


def redact_url(url: str) -> str:
    """`url` without its passwords (postgresql://user:***@host/db, ?password=***)."""
    parts = urlsplit(url)
    if parts.password is not None:
        netloc = parts.netloc.rsplit("@", 1)
        user = netloc[0].split(":", 1)[0]
        parts = parts._replace(netloc=f"{user}:***@{netloc[1]}")
    if parts.query:
        query = "&".join(f"{name}=***" if name.lower() in _PASSWORD_PARAMETERS else f"{name}={value}" if sep else name
                         for name, sep, value in (item.partition("=") for item in parts.query.split("&")))
        parts = parts._replace(query=query)
    return urlunsplit(parts)


def url_passwords(url: str | None) -> list[str]:
    """The passwords a URL carries, before the host or in its query (secrets: logs and messages
    never show them)."""
    if not url:
        return []
    parts = urlsplit(url)
    found = [parts.password, unquote(parts.password)] if parts.password else []
    return found + [unquote(value) for name, value in parse_qsl(parts.query) if name.lower() in _PASSWORD_PARAMETERS
                    and value]
