"""Settings: defaults, then the TOML file, then the environment, then one validation pass.

Every `[section] key` can also be set as `SPMIRROR_<SECTION>_<KEY>`; three short names cover
the common ones (`SPMIRROR_API_URL`, `SPMIRROR_API_KEY`, `SPMIRROR_DB`). The key may come from
a file (`[api] key_file`, or systemd's `LoadCredential=api_key`). Every problem is collected
and reported at once (ConfigError), each naming its key, where it came from, and the bad value.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from mirror.errors import ConfigError

DEFAULT_API_URL = "https://solarproof.com.au/apidata.php"
ENV_PREFIX = "SPMIRROR_"
# Short names for the settings people set most; each is also reachable by its long name.
SHORT_ENV_NAMES = {
    "SPMIRROR_DB": ("database", "path"),
}
# The only SPMIRROR_ variables that are not settings.
NON_SETTING_ENV = {"SPMIRROR_CONFIG"}
CREDENTIAL_NAME = "api_key"


def parse_duration(value: Any) -> float:
    """Seconds from a number or a text such as "45", "30s", "5m", "1h", "1h30m"."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m or 1h")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip().lower()
        if re.fullmatch(r"\d+(\.\d+)?", text):
            seconds = float(text)
        else:
            parts = re.findall(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)", text)
            if not parts or re.sub(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)", "", text).strip():
                raise ValueError("expected a duration such as 30s, 5m or 1h")
            unit = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
            seconds = sum(float(n) * unit[u] for n, u in parts)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("a duration must be a finite number of seconds, zero or more")
    return seconds


def _positive_duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError("expected a duration above zero")
    return seconds


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _integer(low: int, high: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not re.fullmatch(r"-?\d+", str(value).strip()):
            raise ValueError("expected a whole number")
        number = int(str(value).strip())
        if not low <= number <= high:
            raise ValueError(f"expected {low}..{high}")
        return number

    return parse


def _share(value: Any) -> float:
    """A share of the mirror: 0.1 or "10%"."""
    text = str(value).strip()
    try:
        share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise ValueError("expected a share such as 0.1 or 10%") from None
    if not 0 <= share <= 1:
        raise ValueError("expected a share between 0 and 1 (or 0% and 100%)")
    return share


def _choice(*options: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = str(value).strip()
        match = next((o for o in options if o.lower() == text.lower()), None)
        if match is None:
            raise ValueError(f"expected one of {', '.join(options)}")
        return match

    return parse


def _url(value: Any) -> str:
    text = str(value).strip()
    if not re.fullmatch(r"https?://[^/\s]+(/\S*)?", text):
        raise ValueError("expected an http:// or https:// URL")
    return text


def _text(value: Any) -> str:
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ValueError("expected text")
    # A pasted key or path often brings a trailing newline; it is never meant.
    return str(value).strip()


def _listen(value: Any) -> str:
    text = str(value).strip()
    if text == "":
        return text  # off
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("expected host:port, such as 127.0.0.1:8787")
    return text


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
    Setting("database", "busy_timeout", _positive_duration, 60.0),
    Setting("sync", "interval", _positive_duration, 300.0),
    Setting("sync", "mass_delete_share", _share, 0.10),
    Setting("sync", "enrich", _boolean, False),
    Setting("sync", "conflict_policy", _choice("manual", "remote_wins", "local_wins"), "manual"),
    Setting("sync", "push_deletes", _boolean, False),
    Setting("logging", "level", _choice("debug", "info", "warning", "error"), "info"),
    Setting("logging", "format", _choice("auto", "json", "console"), "auto"),
    Setting("daemon", "watch_interval", _positive_duration, 2.0),
    Setting("daemon", "metrics_listen", _listen, ""),
    Setting("webhooks", "listen", _listen, "127.0.0.1:8787"),
    Setting("webhooks", "token", _text, "", secret=True),
)
_BY_NAME = {(s.section, s.key): s for s in SETTINGS}
_BY_ENV = {s.env_name: s for s in SETTINGS} | {k: _BY_NAME[v] for k, v in SHORT_ENV_NAMES.items()}


@dataclass(frozen=True)
class Settings:
    """Validated settings. `values[(section, key)]`; attribute helpers for the common ones."""

    values: Mapping[tuple[str, str], Any]
    source: Path | None = None
    origins: Mapping[tuple[str, str], str] = field(default_factory=dict)

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

    def secrets(self) -> tuple[str, ...]:
        """Values the logs must never show."""
        return tuple(self.values[(s.section, s.key)] for s in SETTINGS if s.secret and self.values[(s.section, s.key)])


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
                  system_file: Path = SYSTEM_CONFIG_FILE) -> Settings:
    """Read, merge and validate every setting; raise ConfigError listing all problems.

    `system_file` replaces /etc/spmirror/config.toml as the search's last place (for tests).
    """
    env = os.environ if env is None else env
    problems: list[str] = []
    path = find_config_file(config_path, env, system_file)
    raw: dict[tuple[str, str], tuple[Any, str]] = {}
    if path is not None:
        _read_file(path, raw, problems)
    env_seen: dict[tuple[str, str], str] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name in NON_SETTING_ENV:
            continue
        setting = _BY_ENV.get(name)
        if setting is None:
            problems.append(f"{name}: not a setting (known: {', '.join(sorted(_BY_ENV))})")
            continue
        key = (setting.section, setting.key)
        if key in env_seen and env_seen[key] != name and env[env_seen[key]] != value:
            problems.append(f"{env_seen[key]} and {name} both set [{key[0]}] {key[1]}, differently: set only one")
        env_seen[key] = name
        raw[key] = (value, f"environment {name}")

    values: dict[tuple[str, str], Any] = {}
    origins: dict[tuple[str, str], str] = {}
    for setting in SETTINGS:
        name = (setting.section, setting.key)
        if name not in raw:
            values[name] = setting.default
            origins[name] = "default"
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
        values[("database", "path")] = str(Path(state_dir.split(":")[0]) / "mirror.db") if state_dir else "mirror.db"
    if problems:
        raise ConfigError(problems)
    return Settings(values, path, origins)


def _read_file(path: Path, raw: dict, problems: list[str]) -> None:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        problems.append(f"{path}: config file not found")
        return
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: cannot read ({exc})")
        return
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"{path}: not valid TOML ({exc})")
        return
    for section, table in document.items():
        if not isinstance(table, dict):
            problems.append(f"{path}: `{section}` must be a [section], not a top-level value")
            continue
        for key, value in table.items():
            if (section, key) not in _BY_NAME:
                known = ", ".join(k for s, k in _BY_NAME if s == section) or "none; sections are " + ", ".join(
                    sorted({s for s, _ in _BY_NAME})
                )
                problems.append(f"{path}: unknown setting [{section}] {key} (known: {known})")
                continue
            raw[(section, key)] = (value, str(path))


def _resolve_key(values: dict, origins: dict, env: Mapping[str, str], problems: list[str]) -> None:
    """Take the key from key_file, or from systemd's credential, when it is not set directly."""
    key_file = values[("api", "key_file")]
    where = f"[api] key_file ({origins[('api', 'key_file')]})"
    credentials = env.get("CREDENTIALS_DIRECTORY")
    if values[("api", "key")]:
        return
    if not key_file and credentials and (Path(credentials) / CREDENTIAL_NAME).is_file():
        key_file = str(Path(credentials) / CREDENTIAL_NAME)
        where = "systemd credential (CREDENTIALS_DIRECTORY)"
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
    origins[("api", "key")] = f"file {key_file}"
