"""Settings: defaults, the TOML file, the environment, one validation pass, and the example file.

Every test passes an explicit `env={...}` to `load_settings`, so the real environment never
leaks in, and works in `tmp_path`, where a stand-in replaces /etc/spmirror/config.toml (see
`system_file`), so the tests also run on a machine that has that file.
"""

from __future__ import annotations

import functools
import inspect
import re
import sys
import tomllib
from pathlib import Path

import pytest

from mirror import config
from mirror.config import (
    DEFAULT_API_URL,
    SETTINGS,
    Origin,
    Settings,
    find_config_file,
    load_settings,
    parse_duration,
)
from mirror.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.toml"  # at the top of the repository, for people reading it
PACKAGED_EXAMPLE = ROOT / "mirror" / "config.example.toml"  # the source, shipped as package data
SYSTEM_CONFIG = Path("/etc/spmirror/config.toml")  # what production searches last
DEFAULTS = {(s.section, s.key): s.default for s in SETTINGS}
SECRET = "sk-CONFIGCANARY-0b1c2d3e4f5a6b7c"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(config_path, env) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(None if config_path is None else str(config_path), env=env)
    return caught.value.problems


@pytest.fixture(autouse=True)
def system_file(tmp_path, monkeypatch) -> Path:
    """A stand-in for /etc/spmirror/config.toml under tmp_path (not created), searched instead of the real one.

    `load_settings` and `find_config_file` in this module are the product's, with their `system_file`
    parameter pointed here, so every test runs (none skips) and none reads this machine's /etc.
    """
    stand_in = tmp_path / "etc" / "spmirror" / "config.toml"
    module = sys.modules[__name__]
    monkeypatch.setattr(module, "load_settings", functools.partial(config.load_settings, system_file=stand_in))
    monkeypatch.setattr(module, "find_config_file", functools.partial(config.find_config_file, system_file=stand_in))
    return stand_in


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """An empty working directory, so ./spmirror.toml is never found by accident."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


# --- layers: defaults, file, environment -------------------------------------------------------


def test_defaults_without_a_file(isolated):
    """With no config file and an empty environment every setting has its default."""
    settings = load_settings(None, env={})
    expected = dict(DEFAULTS)
    expected[("database", "path")] = "mirror.db"
    assert dict(settings.values) == expected
    assert settings.source is None
    assert set(settings.origins.values()) == {Origin("default")}
    assert {str(origin) for origin in settings.origins.values()} == {"default"}
    assert settings.api_url == DEFAULT_API_URL == "https://solarproof.com.au/apidata.php"
    assert settings.api_key == ""
    assert settings.database_path == Path("mirror.db")
    assert settings[("sync", "interval")] == 300.0
    assert settings[("sync", "mass_delete_share")] == pytest.approx(0.10)
    assert settings[("webhooks", "listen")] == "127.0.0.1:8787"


def test_file_overrides_defaults(isolated):
    """A value in the TOML file replaces the default and records the file as its origin."""
    path = write(isolated / "c.toml", '[sync]\ninterval = "1m"\n[api]\nattempts = 3\n')
    settings = load_settings(str(path), env={})
    assert settings[("sync", "interval")] == 60.0
    assert settings[("api", "attempts")] == 3
    assert settings[("api", "read_timeout")] == 30.0
    assert settings.source == path
    assert settings.origins[("sync", "interval")] == Origin("file", str(path), 2)
    assert str(settings.origins[("sync", "interval")]) == f"{path}:2"
    assert settings.origins[("api", "attempts")] == Origin("file", str(path), 4)
    assert str(settings.origins[("api", "read_timeout")]) == "default"


def test_environment_overrides_file(isolated):
    """An SPMIRROR_ variable wins over the same setting in the file."""
    path = write(isolated / "c.toml", '[sync]\ninterval = "1m"\nenrich = false\n')
    settings = load_settings(str(path), env={"SPMIRROR_SYNC_INTERVAL": "2m"})
    assert settings[("sync", "interval")] == 120.0
    assert str(settings.origins[("sync", "interval")]) == "environment SPMIRROR_SYNC_INTERVAL"
    assert settings[("sync", "enrich")] is False


@pytest.mark.parametrize(
    ("name", "value", "setting"),
    [
        ("SPMIRROR_API_URL", "http://127.0.0.1:9/apidata.php", ("api", "url")),
        ("SPMIRROR_API_KEY", SECRET, ("api", "key")),
        ("SPMIRROR_DB", "/srv/data/customers.db", ("database", "path")),
    ],
)
def test_short_environment_names(isolated, name, value, setting):
    """SPMIRROR_API_URL, SPMIRROR_API_KEY and SPMIRROR_DB set the URL, the key and the database."""
    settings = load_settings(None, env={name: value})
    assert settings[setting] == value
    assert settings.origins[setting] == Origin("environment", name)
    assert str(settings.origins[setting]) == f"environment {name}"


def test_short_names_accessors(isolated):
    """The short names feed the api_url, api_key and database_path helpers."""
    settings = load_settings(
        None,
        env={"SPMIRROR_API_URL": "https://x.test/apidata.php", "SPMIRROR_API_KEY": SECRET, "SPMIRROR_DB": "m.db"},
    )
    assert settings.api_url == "https://x.test/apidata.php"
    assert settings.api_key == SECRET
    assert settings.database_path == Path("m.db")


# One valid, non-default environment value per setting, and the value it must parse to.
LONG_NAME_SAMPLES = {
    ("api", "url"): ("http://127.0.0.1:8080/apidata.php", "http://127.0.0.1:8080/apidata.php"),
    ("api", "key"): (SECRET, SECRET),
    ("api", "key_file"): ("KEYFILE", "KEYFILE"),
    ("api", "update_method"): ("put", "PUT"),
    ("api", "delete_method"): ("delete", "DELETE"),
    ("api", "connect_timeout"): ("5s", 5.0),
    ("api", "read_timeout"): ("1m", 60.0),
    ("api", "attempts"): ("3", 3),
    ("api", "deadline"): ("1h", 3600.0),
    ("api", "max_retry_after"): ("30", 30.0),
    ("api", "max_in_flight"): ("16", 16),
    ("api", "max_pages"): ("500", 500),
    ("database", "path"): ("/tmp/elsewhere.db", "/tmp/elsewhere.db"),
    ("database", "url"): ("postgresql://team@db.example/mirror", "postgresql://team@db.example/mirror"),
    ("database", "busy_timeout"): ("5s", 5.0),
    ("sync", "interval"): ("90s", 90.0),
    ("sync", "mass_delete_share"): ("25%", 0.25),
    ("sync", "enrich"): ("true", True),
    ("sync", "conflict_policy"): ("remote_wins", "remote_wins"),
    ("sync", "push_deletes"): ("yes", True),
    ("logging", "level"): ("debug", "debug"),
    ("logging", "format"): ("json", "json"),
    ("daemon", "watch_interval"): ("1s", 1.0),
    ("daemon", "metrics_listen"): ("127.0.0.1:9465", "127.0.0.1:9465"),
    ("webhooks", "listen"): ("0.0.0.0:9000", "0.0.0.0:9000"),
    ("webhooks", "token"): ("tok-123", "tok-123"),
}


def test_long_name_samples_cover_every_setting():
    """The long-name test below has a sample for every setting, so a new setting is not missed."""
    assert set(LONG_NAME_SAMPLES) == {(s.section, s.key) for s in SETTINGS}
    for (section, key), (_, parsed) in LONG_NAME_SAMPLES.items():
        assert parsed != DEFAULTS[(section, key)], f"[{section}] {key} sample equals its default"


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.env_name)
def test_every_long_environment_name(isolated, setting):
    """Every setting is reachable as SPMIRROR_<SECTION>_<KEY>, with that variable as its origin."""
    name = (setting.section, setting.key)
    assert setting.env_name == f"SPMIRROR_{setting.section.upper()}_{setting.key.upper()}"
    raw, parsed = LONG_NAME_SAMPLES[name]
    if raw == "KEYFILE":
        raw = parsed = str(write(isolated / "key.txt", "from-file\n"))
    settings = load_settings(None, env={setting.env_name: raw})
    assert settings[name] == parsed
    assert settings.origins[name] == Origin("environment", setting.env_name)


# --- value formats ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("45", 45.0), (45, 45.0), (2.5, 2.5), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0),
     ("1h30m", 5400.0), ("1h 30m", 5400.0), ("500ms", 0.5), ("1d", 86400.0), (" 5M ", 300.0),
     ("0", 0.0)],
)
def test_durations_accept_seconds_and_units(value, seconds):
    """A duration is a number of seconds or a text with s/m/h (and ms/d) units, summed."""
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    ("value", "seconds"), [("45", 45.0), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), ("1h30m", 5400.0)]
)
def test_durations_from_the_environment(isolated, value, seconds):
    """A duration given in the environment is parsed to seconds."""
    settings = load_settings(None, env={"SPMIRROR_SYNC_INTERVAL": value})
    assert settings[("sync", "interval")] == seconds


@pytest.mark.parametrize(("toml", "seconds"), [("45", 45.0), ("2.5", 2.5), ('"1h30m"', 5400.0)])
def test_durations_from_the_file(isolated, toml, seconds):
    """A duration in the file may be a TOML number or a string with units."""
    path = write(isolated / "c.toml", f"[api]\nread_timeout = {toml}\n")
    assert load_settings(str(path), env={})[("api", "read_timeout")] == seconds


@pytest.mark.parametrize("value", ["", "soon", "5x", "-5", "-5s", "1m30", "5 minutes", "1h-30m", True, -1])
def test_bad_durations_are_rejected(value):
    """Text without a known unit, trailing numbers, negatives and booleans are not durations."""
    with pytest.raises(ValueError):
        parse_duration(value)


def test_bad_duration_is_a_config_error(isolated):
    """A bad duration in the environment is reported with its key, variable and value."""
    (problem,) = problems_of(None, {"SPMIRROR_API_DEADLINE": "forever"})
    assert "[api] deadline" in problem
    assert "SPMIRROR_API_DEADLINE" in problem
    assert "'forever'" in problem


@pytest.mark.parametrize(
    ("value", "share"),
    [("10%", 0.10), ("25%", 0.25), ("0.25", 0.25), ("100%", 1.0), ("0", 0.0), ("0%", 0.0), ("1", 1.0)],
)
def test_shares_from_the_environment(isolated, value, share):
    """A share is a fraction or a percentage."""
    settings = load_settings(None, env={"SPMIRROR_SYNC_MASS_DELETE_SHARE": value})
    assert settings[("sync", "mass_delete_share")] == pytest.approx(share)


@pytest.mark.parametrize(("toml", "share"), [("0.25", 0.25), ('"10%"', 0.10), ("1", 1.0)])
def test_shares_from_the_file(isolated, toml, share):
    """A share in the file may be a TOML number or a "10%" string."""
    path = write(isolated / "c.toml", f"[sync]\nmass_delete_share = {toml}\n")
    assert load_settings(str(path), env={})[("sync", "mass_delete_share")] == pytest.approx(share)


@pytest.mark.parametrize("value", ["lots", "150%", "1.5", "-0.1", "%", "10%%", ""])
def test_bad_shares_are_rejected(isolated, value):
    """A share outside 0..1 (0%..100%) or not a number is an error naming the key and value."""
    (problem,) = problems_of(None, {"SPMIRROR_SYNC_MASS_DELETE_SHARE": value})
    assert "[sync] mass_delete_share" in problem
    assert repr(value) in problem


@pytest.mark.parametrize(
    ("name", "value", "setting", "expected"),
    [
        ("SPMIRROR_API_UPDATE_METHOD", "put", ("api", "update_method"), "PUT"),
        ("SPMIRROR_API_DELETE_METHOD", "Delete", ("api", "delete_method"), "DELETE"),
        ("SPMIRROR_SYNC_CONFLICT_POLICY", "Remote_Wins", ("sync", "conflict_policy"), "remote_wins"),
        ("SPMIRROR_SYNC_CONFLICT_POLICY", "LOCAL_WINS", ("sync", "conflict_policy"), "local_wins"),
        ("SPMIRROR_LOGGING_LEVEL", "WARNING", ("logging", "level"), "warning"),
        ("SPMIRROR_LOGGING_FORMAT", " Console ", ("logging", "format"), "console"),
    ],
)
def test_choices_are_case_insensitive(isolated, name, value, setting, expected):
    """A choice matches its options ignoring case and is stored in its canonical spelling."""
    assert load_settings(None, env={name: value})[setting] == expected


def test_bad_choice_lists_the_options(isolated):
    """A value that is none of the options is an error listing them."""
    (problem,) = problems_of(None, {"SPMIRROR_SYNC_CONFLICT_POLICY": "newest_wins"})
    assert "[sync] conflict_policy" in problem
    assert "'newest_wins'" in problem
    assert "manual" in problem and "remote_wins" in problem and "local_wins" in problem


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("TRUE", True), ("1", True), ("yes", True), ("on", True),
     ("false", False), ("False", False), ("0", False), ("no", False), ("off", False)],
)
def test_booleans_from_the_environment(isolated, value, expected):
    """Booleans accept true/false, 1/0, yes/no and on/off in any case."""
    assert load_settings(None, env={"SPMIRROR_SYNC_ENRICH": value})[("sync", "enrich")] is expected


def test_booleans_from_the_file(isolated):
    """TOML booleans are taken as they are."""
    path = write(isolated / "c.toml", "[sync]\nenrich = true\npush_deletes = false\n")
    settings = load_settings(str(path), env={})
    assert settings[("sync", "enrich")] is True
    assert settings[("sync", "push_deletes")] is False


@pytest.mark.parametrize("value", ["maybe", "2", "", "y e s"])
def test_bad_booleans_are_rejected(isolated, value):
    """Anything else is an error naming the key and value."""
    (problem,) = problems_of(None, {"SPMIRROR_SYNC_PUSH_DELETES": value})
    assert "[sync] push_deletes" in problem and repr(value) in problem


@pytest.mark.parametrize(
    ("name", "value"),
    [("SPMIRROR_API_ATTEMPTS", "0"), ("SPMIRROR_API_ATTEMPTS", "three"), ("SPMIRROR_API_MAX_IN_FLIGHT", "65"),
     ("SPMIRROR_API_MAX_PAGES", "1.5"), ("SPMIRROR_API_URL", "ftp://x"), ("SPMIRROR_API_URL", "solarproof.com.au"),
     ("SPMIRROR_WEBHOOKS_LISTEN", "8787"), ("SPMIRROR_WEBHOOKS_LISTEN", "127.0.0.1:70000"),
     ("SPMIRROR_WEBHOOKS_LISTEN", ":8787")],
)
def test_other_bad_values_are_rejected(isolated, name, value):
    """Out-of-range integers, non-http URLs and listen addresses without host:port are errors."""
    (problem,) = problems_of(None, {name: value})
    assert name in problem and repr(value) in problem


def test_toml_types_that_are_not_text_are_rejected(isolated):
    """A table or array where text is expected is an error, not silently stringified."""
    path = write(isolated / "c.toml", '[database]\npath = ["a", "b"]\n')
    (problem,) = problems_of(path, {})
    assert "[database] path" in problem and str(path) in problem


# --- unknown names, bad files ------------------------------------------------------------------


# Every setting's key; a hint that names more than one of them is a dump, not a suggestion.
ALL_KEYS = {s.key for s in SETTINGS}
ALL_ENV_NAMES = {s.env_name for s in SETTINGS} | {"SPMIRROR_DB", "SPMIRROR_CONFIG"}


def names_in(problem: str, names: set[str]) -> set[str]:
    return {n for n in names if re.search(rf"(?<![\w]){re.escape(n)}(?![\w])", problem)}


def test_unknown_key_in_file_suggests_the_closest(isolated):
    """A misspelt key is one line: file and line, the key, and the closest key of its section."""
    path = write(isolated / "c.toml", '[sync]\nenrich = true\nintervall = "5m"\n')
    (problem,) = problems_of(path, {})
    assert problem == f"{path}:3: unknown setting [sync] intervall; did you mean [sync] interval?"


def test_key_in_the_wrong_section_names_its_section(isolated):
    """A key of another section, or close to one, is pointed at the section that has it."""
    path = write(isolated / "c.toml", '[api]\ninterval = "5m"\n[sync]\nlisten = "127.0.0.1:1"\n'
                                      '[logging]\nwatch_intervall = 2\n')
    problems = problems_of(path, {})
    assert problems == [
        f"{path}:2: unknown setting [api] interval; did you mean [sync] interval?",
        f"{path}:4: unknown setting [sync] listen; did you mean [webhooks] listen?",
        f"{path}:6: unknown setting [logging] watch_intervall; did you mean [daemon] watch_interval?",
    ]


def test_unknown_key_without_a_close_one_points_at_the_example(isolated):
    """With nothing close, the line points at `spmirror config --example` instead of listing keys."""
    path = write(isolated / "c.toml", "[api]\nmystery = 1\n")
    (problem,) = problems_of(path, {})
    assert problem == f"{path}:2: unknown setting [api] mystery; `spmirror config --example` documents every setting"
    assert names_in(problem, ALL_KEYS) == set()


def test_unknown_section_suggests_the_closest_once(isolated):
    """A misspelt section is one line however many keys it holds, naming the closest section."""
    path = write(isolated / "c.toml", '[api]\nattempts = 2\n\n[synch]\ninterval = 5\nenrich = true\n')
    (problem,) = problems_of(path, {})
    assert problem == f"{path}:4: unknown section [synch]; did you mean [sync]?"


def test_unknown_section_without_a_close_one_lists_the_six_sections(isolated):
    """With nothing close, the (few) section names are listed, and no key."""
    path = write(isolated / "c.toml", "[zzz]\nx = 1\n")
    (problem,) = problems_of(path, {})
    assert problem.startswith(f"{path}:1: unknown section [zzz]; the sections are api, database, sync")
    assert names_in(problem, ALL_KEYS - {"api", "database", "sync", "logging", "daemon", "webhooks"}) == set()


def test_top_level_value_in_file_names_its_section(isolated):
    """A key outside any [section] is reported by name, with the section it belongs in."""
    path = write(isolated / "c.toml", 'interval = "5m"\n[sync]\nenrich = true\n')
    (problem,) = problems_of(path, {})
    assert problem == f"{path}:1: `interval` is outside any [section]; did you mean [sync] interval?"


def test_section_given_as_a_value_is_an_error(isolated):
    """`sync = 5` is reported as a section written as a value."""
    path = write(isolated / "c.toml", "sync = 5\n")
    (problem,) = problems_of(path, {})
    assert "`sync`" in problem and "[sync]" in problem and str(path) in problem


@pytest.mark.parametrize(("name", "meant"), [
    ("SPMIRROR_SYNC_INTERVALL", "SPMIRROR_SYNC_INTERVAL"),
    ("SPMIRROR_APIKEY", "SPMIRROR_API_KEY"),
    ("SPMIRROR_API_KEYFILE", "SPMIRROR_API_KEY_FILE"),
    ("SPMIRROR_DATABASE", "SPMIRROR_DATABASE_URL"),
    ("SPMIRROR_D", "SPMIRROR_DB"),
    ("SPMIRROR_CONFIGG", "SPMIRROR_CONFIG"),
    ("SPMIRROR_WEBHOOK_TOKEN", "SPMIRROR_WEBHOOKS_TOKEN"),
])
def test_unknown_environment_variable_suggests_the_closest(isolated, name, meant):
    """A misspelt SPMIRROR_ variable is one line naming it and the closest name, never its value."""
    (problem,) = problems_of(None, {name: SECRET})
    assert problem == f"{name}: not a setting; did you mean {meant}?"
    assert SECRET not in problem


def test_unknown_environment_variable_without_a_close_one(isolated):
    """With nothing close, the line points at `spmirror config --example` instead of listing names."""
    (problem,) = problems_of(None, {"SPMIRROR_BOGUS": SECRET})
    assert problem == "SPMIRROR_BOGUS: not a setting; `spmirror config --example` documents every setting"
    assert names_in(problem, ALL_ENV_NAMES) == set()


def test_the_test_suites_own_variables_are_not_settings(isolated):
    """SPMIRROR_TEST_POSTGRES_URL (and the rest of the test suite's SPMIRROR_TEST_ variables) in a
    developer's shell or CI leave the CLI's configuration valid."""
    settings = load_settings(None, env={"SPMIRROR_TEST_POSTGRES_URL": "postgresql://postgres@127.0.0.1/test",
                                        "SPMIRROR_TEST_REQUIRE_POSTGRES": "1", "SPMIRROR_DB": "x.db"})
    assert str(settings.database) == "x.db"


def test_typos_everywhere_are_all_reported_at_once(isolated):
    """Misspelt names in the file and the environment, and bad values, come in one error, one line each."""
    path = write(isolated / "c.toml", '[synch]\ninterval = 5\n[api]\natempts = 2\nread_timeout = "soon"\n')
    env = {"SPMIRROR_SYNC_INTERVALL": "5m", "SPMIRROR_LOGGING_LEVEL": "loud"}
    problems = problems_of(path, env)
    assert problems == [
        f"{path}:1: unknown section [synch]; did you mean [sync]?",
        f"{path}:4: unknown setting [api] atempts; did you mean [api] attempts?",
        "SPMIRROR_SYNC_INTERVALL: not a setting; did you mean SPMIRROR_SYNC_INTERVAL?",
        f"[api] read_timeout ({path}:5): expected a duration such as 30s, 5m or 1h; got 'soon'",
        "[logging] level (environment SPMIRROR_LOGGING_LEVEL): expected one of debug, info, warning, error; "
        "got 'loud'",
    ]


# --- origins: file lines, the command line --------------------------------------------------


def test_a_name_on_two_lines_gets_no_line_rather_than_a_wrong_one(isolated):
    """A line inside a multi-line string that looks like a key leaves the real key without a line."""
    path = write(isolated / "c.toml", '[webhooks]\ntoken = """\nlisten = "x"\n"""\nlisten = "bad"\n')
    (problem,) = problems_of(path, {})
    assert problem.startswith(f"[webhooks] listen ({path}): ")


def test_dotted_keys_and_inline_tables_load_without_a_line(isolated):
    """Keys written dotted or inline load as usual; their origin is the file, without a line."""
    path = write(isolated / "c.toml", 'sync.interval = "1m"\napi = { attempts = 2 }\n')
    settings = load_settings(str(path), env={})
    assert settings[("sync", "interval")] == 60.0 and settings[("api", "attempts")] == 2
    assert settings.origins[("sync", "interval")] == Origin("file", str(path))
    assert settings.origins[("api", "attempts")] == Origin("file", str(path))


def test_command_line_override_wins_and_is_named(isolated):
    """A command-line value wins over the environment and the file, and its origin names the option."""
    path = write(isolated / "c.toml", '[database]\npath = "file.db"\n')
    settings = load_settings(str(path), env={"SPMIRROR_DB": "env.db"},
                             overrides={("database", "path"): ("cli.db", "--db")})
    assert settings.database_path == Path("cli.db")
    assert settings.origins[("database", "path")] == Origin("command line", "--db")
    assert str(settings.origins[("database", "path")]) == "command line --db"


def test_bad_command_line_value_is_reported_with_the_option(isolated):
    """A bad command-line value is checked like any other and reported naming the option."""
    with pytest.raises(ConfigError) as caught:
        load_settings(None, env={}, overrides={("api", "attempts"): ("0", "--attempts")})
    (problem,) = caught.value.problems
    assert problem == "[api] attempts (command line --attempts): expected 1..100; got '0'"


def test_state_directory_database_names_its_origin(isolated):
    """Under systemd the database path comes from $STATE_DIRECTORY, and its origin says so."""
    settings = load_settings(None, env={"STATE_DIRECTORY": "/var/lib/spmirror"})
    assert str(settings.origins[("database", "path")]) == "environment STATE_DIRECTORY"


def test_other_environment_variables_are_ignored(isolated):
    """Variables without the SPMIRROR_ prefix and SPMIRROR_CONFIG itself are not settings."""
    config = write(isolated / "c.toml", "")
    settings = load_settings(None, env={"SPMIRROR_CONFIG": str(config), "PATH": "/bin", "SPMIRRORX": "1"})
    assert settings.source == config


def test_invalid_toml_names_the_file(isolated):
    """A file that is not valid TOML is reported with its path."""
    path = write(isolated / "c.toml", "[sync\ninterval = \n")
    (problem,) = problems_of(path, {})
    assert str(path) in problem and "TOML" in problem


def test_missing_explicit_config_is_an_error(isolated):
    """A --config path that does not exist is an error naming it, not silently skipped."""
    missing = isolated / "nope.toml"
    (problem,) = problems_of(missing, {})
    assert str(missing) in problem and "not found" in problem


def test_missing_spmirror_config_is_an_error(isolated):
    """$SPMIRROR_CONFIG pointing at a missing file is an error naming it."""
    missing = isolated / "nope.toml"
    (problem,) = problems_of(None, {"SPMIRROR_CONFIG": str(missing)})
    assert str(missing) in problem


def test_several_problems_are_reported_at_once(isolated):
    """Every problem from file and environment lands in one ConfigError, each with key, origin and value."""
    path = write(
        isolated / "c.toml",
        '[sync]\ninterval = "soon"\nmass_delete_share = "200%"\n[api]\nattempts = 0\nmystery = 1\n',
    )
    env = {"SPMIRROR_LOGGING_LEVEL": "loud", "SPMIRROR_SYNC_ENRICH": "maybe", "SPMIRROR_BOGUS": "x"}
    with pytest.raises(ConfigError) as caught:
        load_settings(str(path), env=env)
    problems = caught.value.problems
    assert len(problems) == 7, problems
    expected = [
        ("[sync] interval", str(path), "'soon'"),
        ("[sync] mass_delete_share", str(path), "'200%'"),
        ("[api] attempts", str(path), "0"),
        ("[api] mystery", str(path), ""),
        ("[logging] level", "SPMIRROR_LOGGING_LEVEL", "'loud'"),
        ("[sync] enrich", "SPMIRROR_SYNC_ENRICH", "'maybe'"),
    ]
    for key, origin, value in expected:
        matching = [p for p in problems if key in p]
        assert len(matching) == 1, (key, problems)
        assert origin in matching[0] and value in matching[0]
    assert any("SPMIRROR_BOGUS" in p for p in problems)
    text = str(caught.value)
    assert all(p in text for p in problems)


def test_secret_bad_value_is_masked(isolated):
    """A bad value of a secret setting is shown as *** and never echoed."""
    path = write(isolated / "c.toml", f'[api]\nkey = ["{SECRET}"]\n[webhooks]\ntoken = {{ t = "{SECRET}" }}\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(str(path), env={})
    assert len(caught.value.problems) == 2
    assert all("***" in p for p in caught.value.problems)
    assert SECRET not in str(caught.value)
    assert all(SECRET not in p for p in caught.value.problems)


def test_non_secret_bad_value_is_echoed(isolated):
    """A bad value of an ordinary setting is shown, so the user sees what was wrong."""
    (problem,) = problems_of(None, {"SPMIRROR_API_ATTEMPTS": "lots"})
    assert "'lots'" in problem and "***" not in problem


# --- the API key: key, key_file, systemd credential ---------------------------------------------


def test_key_file_is_read_and_stripped(isolated):
    """[api] key_file supplies the key, without surrounding whitespace or the newline."""
    key_file = write(isolated / "api_key", f"  {SECRET}\n\n")
    path = write(isolated / "c.toml", f'[api]\nkey_file = "{key_file}"\n')
    settings = load_settings(str(path), env={})
    assert settings.api_key == SECRET
    assert settings.origins[("api", "key")] == Origin("key file", str(key_file))
    assert str(settings.origins[("api", "key")]) == f"key file {key_file}"


def test_key_wins_over_key_file(isolated):
    """A key set directly takes precedence over key_file."""
    key_file = write(isolated / "api_key", "from-file\n")
    env = {"SPMIRROR_API_KEY": SECRET, "SPMIRROR_API_KEY_FILE": str(key_file)}
    assert load_settings(None, env=env).api_key == SECRET


def test_unreadable_key_file_is_an_error(isolated):
    """A key_file that cannot be read is an error naming the file and where the setting came from."""
    missing = isolated / "no-such-key"
    (problem,) = problems_of(None, {"SPMIRROR_API_KEY_FILE": str(missing)})
    assert "[api] key_file" in problem
    assert str(missing) in problem
    assert "SPMIRROR_API_KEY_FILE" in problem


def test_key_file_that_is_a_directory_is_an_error(isolated):
    """A key_file pointing at a directory is an error, not a crash."""
    (problem,) = problems_of(None, {"SPMIRROR_API_KEY_FILE": str(isolated)})
    assert str(isolated) in problem


def test_credentials_directory_supplies_the_key(isolated):
    """With no key set, systemd's $CREDENTIALS_DIRECTORY/api_key is read (stripped)."""
    creds = isolated / "creds"
    write(creds / "api_key", f"{SECRET}\n")
    settings = load_settings(None, env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert settings.api_key == SECRET
    assert str(settings.origins[("api", "key")]) == f"credential {creds / 'api_key'}"


def test_credentials_directory_without_api_key_is_fine(isolated):
    """A credentials directory lacking api_key leaves the key empty without error."""
    creds = isolated / "creds"
    creds.mkdir()
    assert load_settings(None, env={"CREDENTIALS_DIRECTORY": str(creds)}).api_key == ""


def test_explicit_key_and_key_file_win_over_credential(isolated):
    """The credential is only a fallback: a key, or a key_file, comes first."""
    creds = isolated / "creds"
    write(creds / "api_key", "from-credential\n")
    key_file = write(isolated / "k", "from-key-file\n")
    env = {"CREDENTIALS_DIRECTORY": str(creds)}
    assert load_settings(None, env=env | {"SPMIRROR_API_KEY": SECRET}).api_key == SECRET
    assert load_settings(None, env=env | {"SPMIRROR_API_KEY_FILE": str(key_file)}).api_key == "from-key-file"


# --- database path ------------------------------------------------------------------------------


def test_state_directory_sets_default_database(isolated):
    """Under systemd ($STATE_DIRECTORY) the default database is mirror.db inside it."""
    state = isolated / "state"
    settings = load_settings(None, env={"STATE_DIRECTORY": str(state)})
    assert settings.database_path == state / "mirror.db"


def test_state_directory_uses_the_first_of_several(isolated):
    """With several StateDirectory= entries (colon-separated) the first one holds the database."""
    settings = load_settings(None, env={"STATE_DIRECTORY": "/var/lib/a:/var/lib/b"})
    assert settings.database_path == Path("/var/lib/a/mirror.db")


def test_explicit_database_path_wins_over_state_directory(isolated):
    """A configured database path is used as given, even under systemd."""
    settings = load_settings(None, env={"STATE_DIRECTORY": "/var/lib/a", "SPMIRROR_DB": "/data/x.db"})
    assert settings.database_path == Path("/data/x.db")


# --- secrets ------------------------------------------------------------------------------------


def test_secrets_lists_key_and_token(isolated):
    """Settings.secrets() returns the non-empty secret values: the API key and the webhook token."""
    settings = load_settings(None, env={"SPMIRROR_API_KEY": SECRET, "SPMIRROR_WEBHOOKS_TOKEN": "tok-42"})
    assert set(settings.secrets()) == {SECRET, "tok-42"}


def test_secrets_include_a_key_read_from_a_file(isolated):
    """A key read from key_file is a secret too."""
    key_file = write(isolated / "k", f"{SECRET}\n")
    settings = load_settings(None, env={"SPMIRROR_API_KEY_FILE": str(key_file)})
    assert settings.secrets() == (SECRET,)


def test_secrets_empty_by_default(isolated):
    """With no key and no token there is nothing to mask."""
    assert load_settings(None, env={}).secrets() == ()


def test_settings_can_be_built_and_indexed():
    """Settings can be built directly and indexed by (section, key)."""
    settings = Settings(dict(DEFAULTS))
    assert settings[("api", "attempts")] == 6 and settings.api_url == DEFAULT_API_URL


# --- config file search order -------------------------------------------------------------------


@pytest.fixture
def places(isolated):
    """A candidate file in each searched location, and an env naming the systemd and XDG ones."""
    files = {
        "explicit": write(isolated / "explicit.toml", ""),
        "env": write(isolated / "from-env.toml", ""),
        "cwd": write(Path.cwd() / "spmirror.toml", ""),
        "systemd": write(isolated / "etc-conf" / "config.toml", ""),
        "xdg": write(isolated / "xdg" / "spmirror" / "config.toml", ""),
        "home": write(isolated / "home" / ".config" / "spmirror" / "config.toml", ""),
    }
    env = {
        "SPMIRROR_CONFIG": str(files["env"]),
        "CONFIGURATION_DIRECTORY": str(isolated / "etc-conf"),
        "XDG_CONFIG_HOME": str(isolated / "xdg"),
        "HOME": str(isolated / "home"),
    }
    return files, env


def test_search_explicit_path_comes_first(places):
    """--config wins over everything else."""
    files, env = places
    assert find_config_file(str(files["explicit"]), env) == files["explicit"]


def test_search_spmirror_config_comes_next(places):
    """Without --config, $SPMIRROR_CONFIG is used."""
    files, env = places
    assert find_config_file(None, env) == files["env"]


def test_search_working_directory_next(places):
    """Then ./spmirror.toml in the working directory."""
    files, env = places
    del env["SPMIRROR_CONFIG"]
    assert find_config_file(None, env).resolve() == files["cwd"].resolve()


def test_search_configuration_directory_next(places):
    """Then systemd's $CONFIGURATION_DIRECTORY/config.toml."""
    files, env = places
    del env["SPMIRROR_CONFIG"]
    files["cwd"].unlink()
    assert find_config_file(None, env) == files["systemd"]


def test_search_xdg_config_home_next(places):
    """Then $XDG_CONFIG_HOME/spmirror/config.toml."""
    files, env = places
    del env["SPMIRROR_CONFIG"]
    files["cwd"].unlink()
    files["systemd"].unlink()
    assert find_config_file(None, env) == files["xdg"]


def test_search_home_config_without_xdg(places):
    """Without XDG_CONFIG_HOME, ~/.config/spmirror/config.toml under $HOME is used."""
    files, env = places
    del env["SPMIRROR_CONFIG"], env["XDG_CONFIG_HOME"]
    files["cwd"].unlink()
    files["systemd"].unlink()
    assert find_config_file(None, env) == files["home"]


def test_search_finds_nothing(isolated):
    """With no file in any searched place there is no config file, and that is fine."""
    env = {"XDG_CONFIG_HOME": str(isolated / "xdg"), "CONFIGURATION_DIRECTORY": str(isolated / "c")}
    assert find_config_file(None, env) is None
    assert load_settings(None, env=env).source is None


def test_search_system_file_comes_last(places, system_file):
    """/etc/spmirror/config.toml (here its stand-in) is used only when no other searched place has a file."""
    files, env = places
    write(system_file, "[api]\nattempts = 5\n")
    del env["SPMIRROR_CONFIG"]
    assert find_config_file(None, env).resolve() == files["cwd"].resolve()
    for earlier in ("cwd", "systemd", "xdg"):
        assert find_config_file(None, env) != system_file
        files[earlier].unlink()
    del env["XDG_CONFIG_HOME"], env["HOME"]
    assert find_config_file(None, env) == system_file
    settings = load_settings(None, env=env)
    assert settings.source == system_file and settings[("api", "attempts")] == 5
    assert settings.origins[("api", "attempts")] == Origin("file", str(system_file), 2)


def test_production_searches_etc_last():
    """Without the test seam, the last place searched is /etc/spmirror/config.toml."""
    for function in (config.find_config_file, config.load_settings):
        assert inspect.signature(function).parameters["system_file"].default == SYSTEM_CONFIG


def test_searched_file_is_loaded(isolated):
    """load_settings reads the file the search found and records it as the source."""
    write(Path.cwd() / "spmirror.toml", "[api]\nattempts = 2\n")
    settings = load_settings(None, env={})
    assert settings[("api", "attempts")] == 2
    assert settings.source.resolve() == (Path.cwd() / "spmirror.toml").resolve()


# --- the example file ---------------------------------------------------------------------------


def test_example_ships_in_the_package_and_the_top_level_file_is_the_same():
    """The packaged example is the source; the repository's top-level file is the very same text
    (a symlink to it), and example_text() reads the packaged one."""
    assert PACKAGED_EXAMPLE.is_file() and not PACKAGED_EXAMPLE.is_symlink()
    assert EXAMPLE.read_bytes() == PACKAGED_EXAMPLE.read_bytes()
    assert config.example_text() == PACKAGED_EXAMPLE.read_text(encoding="utf-8")


def test_example_gives_no_problem_and_no_hint_names_a_file_a_pip_install_lacks():
    """The example loads without a problem, and no hint in mirror/config.py sends a user to the
    repository's config.example.toml (a pip install has only `spmirror config --example`)."""
    load_settings(str(PACKAGED_EXAMPLE), env={})
    source = Path(config.__file__).read_text(encoding="utf-8")
    assert "see config.example.toml" not in source and "in config.example.toml" not in source
    assert config.SEE_EXAMPLE == "`spmirror config --example` documents every setting"


def test_example_config_loads_and_gives_the_defaults(isolated):
    """config.example.toml loads as-is and yields exactly the same values as no file at all."""
    settings = load_settings(str(EXAMPLE), env={})
    assert dict(settings.values) == dict(load_settings(None, env={}).values)
    for setting in SETTINGS:
        assert settings[(setting.section, setting.key)] == (
            "mirror.db" if (setting.section, setting.key) == ("database", "path") else setting.default
        )


COMMENTED_OUT = {("api", "key"), ("api", "key_file"), ("database", "path"), ("database", "url"), ("webhooks", "token")}


def _example_lines_by_section() -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = ""
    for line in EXAMPLE.read_text(encoding="ascii").splitlines():
        header = re.fullmatch(r"\[(\w+)\]\s*", line)
        if header:
            current = header.group(1)
            sections.setdefault(current, [])
            continue
        sections.setdefault(current, []).append(line)
    return sections


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: f"{s.section}.{s.key}")
def test_example_config_documents_every_setting(setting):
    """Each setting has its `key = ...` line inside its [section], and its env var is mentioned."""
    lines = _example_lines_by_section().get(setting.section)
    assert lines is not None, f"no [{setting.section}] section"
    pattern = re.compile(rf"^(#\s*)?{re.escape(setting.key)}\s*=\s*\S")
    matching = [line for line in lines if pattern.match(line)]
    assert matching, f"[{setting.section}] {setting.key} has no line"
    commented = all(line.startswith("#") for line in matching)
    assert commented == ((setting.section, setting.key) in COMMENTED_OUT)
    text = EXAMPLE.read_text(encoding="ascii")
    assert setting.env_name in text


def test_example_config_format():
    """The example is plain ASCII, lines under 100 characters, sections in SETTINGS order, short names named."""
    text = EXAMPLE.read_bytes().decode("ascii")
    assert all(len(line) < 100 for line in text.splitlines())
    order = list(dict.fromkeys(s.section for s in SETTINGS))
    headers = re.findall(r"^\[(\w+)\]\s*$", text, flags=re.M)
    assert headers == order
    for name in ("SPMIRROR_API_URL", "SPMIRROR_API_KEY", "SPMIRROR_DB", "CREDENTIALS_DIRECTORY",
                 "STATE_DIRECTORY", "LoadCredential=api_key"):
        assert name in text
    # The commented-out examples would themselves be valid TOML for their settings.
    uncommented = re.sub(r"^# ((?:key|key_file|path|url|token) = .*)$", r"\1", text, flags=re.M)
    document = tomllib.loads(uncommented)
    assert {(s, k) for s, table in document.items() for k in table} == {(s.section, s.key) for s in SETTINGS}


# --- defects found in review, fixed since ----------------------------------------------


def test_key_file_not_utf8_is_a_config_error(isolated):
    """A key_file that is not UTF-8 text is a ConfigError naming it, not an uncaught UnicodeDecodeError."""
    key_file = isolated / "binary-key"
    key_file.write_bytes(b"\xff\xfe\x00key")
    (problem,) = problems_of(None, {"SPMIRROR_API_KEY_FILE": str(key_file)})
    assert str(key_file) in problem


@pytest.mark.parametrize("toml", ["inf", "nan"])
def test_non_finite_durations_are_rejected(isolated, toml):
    """A TOML inf or nan is not a usable duration and is reported."""
    path = write(isolated / "c.toml", f"[sync]\ninterval = {toml}\n")
    (problem,) = problems_of(path, {})
    assert "[sync] interval" in problem


def test_short_and_long_name_together_do_not_depend_on_order(isolated):
    """Setting both SPMIRROR_DB and SPMIRROR_DATABASE_PATH gives the same outcome whatever their order."""

    def outcome(env):
        try:
            return load_settings(None, env=env).database_path
        except ConfigError:
            return "error"

    first = outcome({"SPMIRROR_DB": "a.db", "SPMIRROR_DATABASE_PATH": "b.db"})
    second = outcome({"SPMIRROR_DATABASE_PATH": "b.db", "SPMIRROR_DB": "a.db"})
    assert first == second
