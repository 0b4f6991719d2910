"""Settings: defaults, then the TOML file, then the environment, then the command line, then
one validation pass.

Every `[section] key` can also be set as `SPMIRROR_<SECTION>_<KEY>`; three short names cover
the common ones (`SPMIRROR_API_URL`, `SPMIRROR_API_KEY`, `SPMIRROR_DB`). The key may come from
a file (`[api] key_file`, or systemd's `LoadCredential=api_key`). Every problem is collected
and reported at once (ConfigError), each naming its key, where it came from, and the bad value;
a misspelt name gets the closest valid one. Each value remembers its Origin, which
`spmirror config` shows. The documented example (every setting at its default) ships inside
the package as mirror/config.example.toml: `example_text()`, `spmirror config --example`.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from mirror.config_values import (  # noqa: F401  (parse_duration is part of this module's API)
    _boolean, _choice, _integer, _listen, _positive_duration, _share, _text, _url, parse_duration)
from mirror.errors import ConfigError
from mirror.store.location import Location, url_passwords

DEFAULT_API_URL = "https://solarproof.com.au/apidata.php"
ENV_PREFIX = "SPMIRROR_"
# Short names for the settings people set most; each is also reachable by its long name.
SHORT_ENV_NAMES = {
    "SPMIRROR_DB": ("database", "path"),
}
# The only SPMIRROR_ variables that are not settings.
NON_SETTING_ENV = {"SPMIRROR_CONFIG"}
# The test suite's own variables (SPMIRROR_TEST_POSTGRES_URL, SPMIRROR_TEST_REQUIRE_POSTGRES): a
# CLI started by a test, or by a developer's shell that has them set, is not misconfigured.
TEST_SUITE_ENV_PREFIX = "SPMIRROR_TEST_"
CREDENTIAL_NAME = "api_key"
EXAMPLE_RESOURCE = "config.example.toml"  # package data of `mirror`
SEE_EXAMPLE = "`spmirror config --example` documents every setting"


@dataclass(frozen=True)
class Setting:
    section: str
    key: str
    parse: Callable[[Any], Any]
    default: Any
    secret: bool = False

    @property
    def env_name(self) -> str:
        return f"{ENV_PREFIX}{self.section}_{self.key}".upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("api", "url", _url, DEFAULT_API_URL),
    Setting("api", "key", _text, "", secret=True),
    Setting("api", "key_file", _text, ""),
    Setting("api", "update_method", _choice("POST", "PUT"), "POST"),
    Setting("api", "delete_method", _choice("POST", "DELETE"), "POST"),
    Setting("api", "connect_timeout", _positive_duration, 10.0),
    Setting("api", "read_timeout", _positive_duration, 30.0),
    Setting("api", "attempts", _integer(1, 100), 6),
    Setting("api", "deadline", _positive_duration, 300.0),
    Setting("api", "max_retry_after", parse_duration, 120.0),
    Setting("api", "max_in_flight", _integer(1, 64), 8),
    Setting("api", "max_pages", _integer(1, 10_000_000), 100_000),
    Setting("database", "path", _text, ""),
    Setting("database", "url", _text, ""),
    Setting("database", "busy_timeout", _positive_duration, 60.0),
    Setting("sync", "interval", _positive_duration, 300.0),
    Setting("sync", "mass_delete_share", _share, 0.10),
    Setting("sync", "enrich", _boolean, False),
    Setting("sync", "conflict_policy", _choice("manual", "remote_wins", "local_wins"), "manual"),
    Setting("sync", "push_deletes", _boolean, False),
    Setting("logging", "level", _choice("debug", "info", "warning", "error"), "info"),
    Setting("logging", "format", _choice("auto", "json", "console"), "auto"),
    Setting("daemon", "watch_interval", _positive_duration, 0.25),
    Setting("daemon", "metrics_listen", _listen, ""),
    Setting("webhooks", "listen", _listen, "127.0.0.1:8787"),
    Setting("webhooks", "token", _text, "", secret=True),
)
_BY_NAME = {(s.section, s.key): s for s in SETTINGS}
_BY_ENV = {s.env_name: s for s in SETTINGS} | {k: _BY_NAME[v] for k, v in SHORT_ENV_NAMES.items()}
_SECTIONS = tuple(dict.fromkeys(s.section for s in SETTINGS))


@dataclass(frozen=True)
class Origin:
    """Where a value came from. `str()` is how messages and `spmirror config` name it.

    kind is one of: "default"; "file" (the TOML config file: `name` is its path, `line` the
    line of the key when it could be found); "environment" (`name` is the variable);
    "command line" (`name` is the option, such as --db); "key file" and "credential" (the API
    key was read from the file `name`, given by [api] key_file or by systemd's LoadCredential=).
    """

    kind: str
    name: str = ""
    line: int | None = None

    def __str__(self) -> str:
        if self.kind == "file":
            return f"{self.name}:{self.line}" if self.line else self.name
        return f"{self.kind} {self.name}" if self.name else self.kind


DEFAULT = Origin("default")


@dataclass(frozen=True)
class Settings:
    """Validated settings. `values[(section, key)]`; attribute helpers for the common ones."""

    values: Mapping[tuple[str, str], Any]
    source: Path | None = None
    origins: Mapping[tuple[str, str], Origin] = field(default_factory=dict)

    def __getitem__(self, name: tuple[str, str]) -> Any:
        return self.values[name]

    @property
    def api_url(self) -> str:
        return self.values[("api", "url")]

    @property
    def api_key(self) -> str:
        return self.values[("api", "key")]

    @property
    def database_path(self) -> Path:
        return Path(self.values[("database", "path")])

    @property
    def database(self) -> Location:
        """Where the mirror is: `[database] url` if set, else `[database] path` (SPMIRROR_DB, --db),
        which may itself be a postgresql:// URL."""
        return Location.parse(self.values[("database", "url")] or self.values[("database", "path")])

    def secrets(self) -> tuple[str, ...]:
        """Values the logs must never show."""
        found = [self.values[(s.section, s.key)] for s in SETTINGS if s.secret and self.values[(s.section, s.key)]]
        return tuple(found + url_passwords(self.database.url))


SYSTEM_CONFIG_FILE = Path("/etc/spmirror/config.toml")


def find_config_file(explicit: str | None, env: Mapping[str, str],
                     system_file: Path = SYSTEM_CONFIG_FILE) -> Path | None:
    """The config file to read: --config, $SPMIRROR_CONFIG, ./spmirror.toml, the user's, /etc's.

    An explicit path must exist; the searched locations are optional. `system_file` is the last
    place searched: /etc/spmirror/config.toml, unless a test points it into a temporary directory
    (so a machine that has the real file still runs the search tests).
    """
    if explicit:
        return Path(explicit)
    if env.get("SPMIRROR_CONFIG"):
        return Path(env["SPMIRROR_CONFIG"])
    candidates = [Path("spmirror.toml")]
    if env.get("CONFIGURATION_DIRECTORY"):  # systemd ConfigurationDirectory=
        candidates.append(Path(env["CONFIGURATION_DIRECTORY"].split(":")[0]) / "config.toml")
    config_home = env.get("XDG_CONFIG_HOME") or (str(Path(env["HOME"]) / ".config") if env.get("HOME") else "")
    if config_home:
        candidates.append(Path(config_home) / "spmirror" / "config.toml")
    candidates.append(system_file)
    return next((p for p in candidates if p.is_file()), None)


def load_settings(config_path: str | None = None, env: Mapping[str, str] | None = None, *,
                  overrides: Mapping[tuple[str, str], tuple[Any, str]] | None = None,
                  system_file: Path = SYSTEM_CONFIG_FILE) -> Settings:
    """Read, merge and validate every setting; raise ConfigError listing all problems.

    `overrides` are command-line values, `{(section, key): (value, option)}` such as
    `{("database", "path"): ("x.db", "--db")}`: they win over the environment, are checked like
    any other value, and their origin names the option. `system_file` replaces
    /etc/spmirror/config.toml as the search's last place (for tests).
    """
    env = os.environ if env is None else env
    problems: list[str] = []
    path = find_config_file(config_path, env, system_file)
    raw: dict[tuple[str, str], tuple[Any, Origin]] = {}
    if path is not None:
        _read_file(path, raw, problems)
    env_seen: dict[tuple[str, str], str] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name in NON_SETTING_ENV or name.startswith(TEST_SUITE_ENV_PREFIX):
            continue
        setting = _BY_ENV.get(name)
        if setting is None:
            # The value is not echoed: it may be a key under a misspelt name.
            close = _closest(name.removeprefix(ENV_PREFIX), [n.removeprefix(ENV_PREFIX) for n in
                                                             [*_BY_ENV, *NON_SETTING_ENV]])
            problems.append(f"{name}: not a setting; " + (f"did you mean {ENV_PREFIX}{close}?" if close
                                                          else SEE_EXAMPLE))
            continue
        key = (setting.section, setting.key)
        if key in env_seen and env_seen[key] != name and env[env_seen[key]] != value:
            problems.append(f"{env_seen[key]} and {name} both set [{key[0]}] {key[1]}, differently: set only one")
        env_seen[key] = name
        raw[key] = (value, Origin("environment", name))
    for key, (value, option) in (overrides or {}).items():
        if key not in _BY_NAME:
            raise KeyError(f"no setting {key}")  # the caller's mistake, not the user's
        raw[key] = (value, Origin("command line", option))

    values: dict[tuple[str, str], Any] = {}
    origins: dict[tuple[str, str], Origin] = {}
    for setting in SETTINGS:
        name = (setting.section, setting.key)
        if name not in raw:
            values[name] = setting.default
            origins[name] = DEFAULT
            continue
        value, origin = raw[name]
        origins[name] = origin
        try:
            values[name] = setting.parse(value)
        except ValueError as exc:
            shown = "***" if setting.secret else repr(value)
            problems.append(f"[{setting.section}] {setting.key} ({origin}): {exc}; got {shown}")
            values[name] = setting.default

    _resolve_key(values, origins, env, problems)
    if not values[("database", "path")]:
        state_dir = env.get("STATE_DIRECTORY")  # systemd StateDirectory=
        if state_dir:
            values[("database", "path")] = str(Path(state_dir.split(":")[0]) / "mirror.db")
            origins[("database", "path")] = Origin("environment", "STATE_DIRECTORY")
        else:
            values[("database", "path")] = "mirror.db"
    if problems:
        raise ConfigError(problems)
    return Settings(values, path, origins)


def example_text() -> str:
    """The documented example config that ships in the package: every setting at its default."""
    from importlib import resources  # only `spmirror config --example` needs it

    return resources.files("mirror").joinpath(EXAMPLE_RESOURCE).read_text(encoding="utf-8")


def _closest(name: str, candidates: list[str]) -> str | None:
    found = difflib.get_close_matches(name, candidates, n=1)
    return found[0] if found else None


def _read_file(path: Path, raw: dict, problems: list[str]) -> None:
    try:
        text = path.read_text(encoding="utf-8")
        document = tomllib.loads(text)
    except FileNotFoundError:
        problems.append(f"{path}: config file not found")
        return
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: cannot read ({exc})")
        return
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"{path}: not valid TOML ({exc})")
        return
    lines = _line_numbers(text)

    def where(section: str, key: str = "") -> Origin:
        return Origin("file", str(path), lines.get((section, key)))

    for section, table in document.items():
        if not isinstance(table, dict):
            hint = f"write it as a [{section}] table" if section in _SECTIONS else _key_hint("", section)
            problems.append(f"{where('', section)}: `{section}` is outside any [section]; {hint}")
            continue
        if section not in _SECTIONS:
            close = _closest(section, list(_SECTIONS))
            problems.append(f"{where(section)}: unknown section [{section}]; " + (
                f"did you mean [{close}]?" if close else f"the sections are {', '.join(_SECTIONS)}"))
            continue
        for key, value in table.items():
            if (section, key) not in _BY_NAME:
                problems.append(f"{where(section, key)}: unknown setting [{section}] {key}; {_key_hint(section, key)}")
                continue
            raw[(section, key)] = (value, where(section, key))


def _key_hint(section: str, key: str) -> str:
    """The closest key of `section`; else the same key, or the closest, in another section."""
    close = _closest(key, [k for s, k in _BY_NAME if s == section])
    if close:
        return f"did you mean [{section}] {close}?"
    close = key if any(k == key for _, k in _BY_NAME) else _closest(key, [k for _, k in _BY_NAME])
    home = next((s for s, k in _BY_NAME if k == close), None)
    return f"did you mean [{home}] {close}?" if home else SEE_EXAMPLE


_HEADER = re.compile(r"\s*\[\s*([A-Za-z0-9_-]+)\s*\]\s*(#.*)?")
_KEY = re.compile(r"\s*([A-Za-z0-9_-]+)\s*=")


def _line_numbers(text: str) -> dict[tuple[str, str], int]:
    """The line of each plain `key = ...` under its `[section]` ((section, "") for the header).

    A light scan, not a TOML parser: a name seen on more than one line (which a valid file
    allows only inside a multi-line string) gets no line rather than a wrong one, and names
    written as dotted keys or inline tables get none either.
    """
    seen: dict[tuple[str, str], list[int]] = {}
    section = ""
    for number, line in enumerate(text.splitlines(), start=1):
        if header := _HEADER.fullmatch(line):
            section = header.group(1)
            seen.setdefault((section, ""), []).append(number)
        elif line.lstrip().startswith("["):
            section = "\0"  # [[array]] or [dotted.table]: nothing below it is a setting's line
        elif key := _KEY.match(line):
            seen.setdefault((section, key.group(1)), []).append(number)
    return {name: numbers[0] for name, numbers in seen.items() if len(numbers) == 1}


def _resolve_key(values: dict, origins: dict, env: Mapping[str, str], problems: list[str]) -> None:
    """Take the key from key_file, or from systemd's credential, when it is not set directly."""
    key_file = values[("api", "key_file")]
    where = f"[api] key_file ({origins[('api', 'key_file')]})"
    origin = Origin("key file", key_file)
    credentials = env.get("CREDENTIALS_DIRECTORY")
    if values[("api", "key")]:
        return
    if not key_file and credentials and (Path(credentials) / CREDENTIAL_NAME).is_file():
        key_file = str(Path(credentials) / CREDENTIAL_NAME)
        where = "systemd credential (CREDENTIALS_DIRECTORY)"
        origin = Origin("credential", key_file)
    if not key_file:
        return
    try:
        key = Path(key_file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        problems.append(f"{where}: cannot read {key_file} ({exc.strerror})")
        return
    except UnicodeDecodeError:
        problems.append(f"{where}: {key_file} is not UTF-8 text")
        return
    if not key:
        problems.append(f"{where}: {key_file} is empty")
        return
    values[("api", "key")] = key
    origins[("api", "key")] = origin
