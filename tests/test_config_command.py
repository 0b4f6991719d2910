"""`spmirror config`, run as users run it: the real CLI in a subprocess.

Each run passes `--config` (or breaks the settings on purpose), so no searched file, not even
this machine's /etc/spmirror/config.toml, is read; the environment is scrubbed of SPMIRROR_* and
systemd variables. No API call is made and no key is needed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from mirror.config import SETTINGS, load_settings

ROOT = Path(__file__).resolve().parent.parent
PACKAGED_EXAMPLE = ROOT / "mirror" / "config.example.toml"
TOP_LEVEL_EXAMPLE = ROOT / "config.example.toml"
KEY = "sk-Zq8RwX4vTn2LpY7mKc5J"  # distinctive, so any piece of it in the output is a leak
TOKEN = "tok-Hv3QsG9dWe6BaU1y"


def spmirror(*args: str, cwd: Path, **settings: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SPMIRROR_") and k not in ("CREDENTIALS_DIRECTORY", "STATE_DIRECTORY",
                                                          "CONFIGURATION_DIRECTORY")}
    env["XDG_CONFIG_HOME"] = str(cwd / "xdg")  # no user config file is picked up
    env.update(settings)
    return subprocess.run([sys.executable, "-m", "mirror", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=60)


def pieces(secret: str, size: int = 5) -> list[str]:
    return [secret[i:i + size] for i in range(len(secret) - size + 1)]


@pytest.fixture
def config_file(tmp_path) -> Path:
    """A file setting [sync] interval on line 2 and the webhook token on line 6; the key comes
    from the environment, [logging] level too."""
    path = tmp_path / "spmirror.toml"
    path.write_text(f'[sync]\ninterval = "1m"\n\n# a comment\n[webhooks]\ntoken = "{TOKEN}"\n', encoding="utf-8")
    return path


def row(output: str, key: str) -> str:
    (line,) = [line for line in output.splitlines() if line.startswith(f"{key} = ")]
    return line


def test_text_names_each_origin_and_masks_secrets(tmp_path, config_file):
    """Each line gives the value and its origin: the file with its line, the variable, or default;
    the key and the token show as *** and no piece of either appears anywhere."""
    result = spmirror("config", "--config", str(config_file), cwd=tmp_path,
                      SPMIRROR_API_KEY=KEY, SPMIRROR_LOGGING_LEVEL="debug")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.splitlines()[0] == f"# config file: {config_file}"
    assert re.fullmatch(rf'interval = 60 +# {re.escape(str(config_file))}:2', row(out, "interval"))
    assert re.fullmatch(r'level = "debug" +# environment SPMIRROR_LOGGING_LEVEL', row(out, "level"))
    assert re.fullmatch(r'attempts = 6 +# default', row(out, "attempts"))
    assert re.fullmatch(r'key = "\*\*\*" +# environment SPMIRROR_API_KEY', row(out, "key"))
    assert re.fullmatch(rf'token = "\*\*\*" +# {re.escape(str(config_file))}:6', row(out, "token"))
    assert re.fullmatch(r'key_file = "" +# default', row(out, "key_file"))
    for piece in pieces(KEY) + pieces(TOKEN):
        assert piece not in out + result.stderr, piece
    assert len([line for line in out.splitlines() if " = " in line]) == len(SETTINGS)


def test_a_command_line_option_is_named_as_the_origin(tmp_path, config_file):
    """`--db` wins over SPMIRROR_DB, and the database path's origin names the option."""
    result = spmirror("config", "--config", str(config_file), "--db", "cli.db", cwd=tmp_path, SPMIRROR_DB="env.db")
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r'path = "cli\.db" +# command line --db', row(result.stdout, "path"))


def test_a_key_read_from_a_key_file_is_masked_and_its_file_named(tmp_path):
    """A key from [api] key_file is shown as ***, with the file it was read from as its origin."""
    key_file = tmp_path / "api_key"
    key_file.write_text(KEY + "\n", encoding="utf-8")
    path = tmp_path / "c.toml"
    path.write_text(f'[api]\nkey_file = "{key_file}"\n', encoding="utf-8")
    result = spmirror("config", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(rf'key = "\*\*\*" +# key file {re.escape(str(key_file))}', row(result.stdout, "key"))
    for piece in pieces(KEY):
        assert piece not in result.stdout + result.stderr, piece


def test_a_short_token_is_masked_and_a_key_pasted_elsewhere_too(tmp_path):
    """A secret is *** however short, and the key is masked even inside another setting's value
    (here pasted into the URL), in text and in JSON."""
    path = tmp_path / "c.toml"
    path.write_text('[webhooks]\ntoken = "t-42"\n', encoding="utf-8")
    url = f"https://x.test/{KEY}/apidata.php"
    for args in (("config",), ("config", "--json")):
        result = spmirror(*args, "--config", str(path), cwd=tmp_path, SPMIRROR_API_KEY=KEY, SPMIRROR_API_URL=url)
        assert result.returncode == 0, result.stderr
        assert "t-42" not in result.stdout
        for piece in pieces(KEY):
            assert piece not in result.stdout, piece
        assert "https://x.test/" in result.stdout


def test_text_output_is_a_config_that_loads_to_the_same_values(tmp_path, config_file):
    """The printed settings are TOML: loaded as a config file they give the values shown (secrets
    aside), so `spmirror config > spmirror.toml` pins the current settings."""
    result = spmirror("config", "--config", str(config_file), cwd=tmp_path, SPMIRROR_API_ATTEMPTS="3")
    assert result.returncode == 0, result.stderr
    printed = tmp_path / "printed.toml"
    printed.write_text(result.stdout, encoding="utf-8")
    expected = load_settings(str(config_file), env={"SPMIRROR_API_ATTEMPTS": "3"}).values
    reloaded = load_settings(str(printed), env={}).values
    secrets = {(s.section, s.key) for s in SETTINGS if s.secret}
    assert {k: v for k, v in reloaded.items() if k not in secrets} == \
        {k: v for k, v in expected.items() if k not in secrets}


def test_json_gives_values_origins_and_masks_secrets(tmp_path, config_file):
    """`--json` is one object: settings[section][key] with value, origin (kind, name, line, text),
    its environment variable and whether it is secret."""
    result = spmirror("config", "--json", "--config", str(config_file), cwd=tmp_path, SPMIRROR_API_KEY=KEY)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["config_file"] == str(config_file)
    settings = document["settings"]
    assert {(s, k) for s, table in settings.items() for k in table} == {(s.section, s.key) for s in SETTINGS}
    assert settings["sync"]["interval"] == {
        "value": 60.0, "origin": {"kind": "file", "name": str(config_file), "line": 2, "text": f"{config_file}:2"},
        "environment": "SPMIRROR_SYNC_INTERVAL", "secret": False}
    assert settings["api"]["key"]["value"] == "***" and settings["api"]["key"]["secret"] is True
    assert settings["api"]["key"]["origin"] == {"kind": "environment", "name": "SPMIRROR_API_KEY", "line": None,
                                                "text": "environment SPMIRROR_API_KEY"}
    assert settings["webhooks"]["token"]["value"] == "***"
    assert settings["api"]["attempts"]["value"] == 6
    assert settings["api"]["attempts"]["origin"]["kind"] == "default"
    assert settings["database"]["path"]["value"] == "mirror.db"
    for piece in pieces(KEY) + pieces(TOKEN):
        assert piece not in result.stdout, piece


def test_example_prints_the_shipped_example_even_with_broken_settings(tmp_path):
    """`--example` prints the packaged example byte for byte (the same as the top-level file),
    needs no key, and works while the settings it would read are broken."""
    result = spmirror("config", "--example", cwd=tmp_path, SPMIRROR_BOGUS="1",
                      SPMIRROR_CONFIG=str(tmp_path / "missing.toml"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == PACKAGED_EXAMPLE.read_text(encoding="utf-8")
    assert result.stdout == TOP_LEVEL_EXAMPLE.read_text(encoding="utf-8")
    example = tmp_path / "example.toml"
    example.write_text(result.stdout, encoding="utf-8")
    assert tomllib.loads(result.stdout)
    load_settings(str(example), env={})  # no problem raised


def test_broken_settings_are_reported_with_the_closest_names(tmp_path):
    """`spmirror config` on broken settings exits 2 with one line per problem, each naming the
    closest valid name, and no list of every setting."""
    path = tmp_path / "c.toml"
    path.write_text('[sync]\nintervall = "5m"\n', encoding="utf-8")
    result = spmirror("config", "--config", str(path), cwd=tmp_path, SPMIRROR_APIKEY=KEY)
    assert result.returncode == 2
    assert f"{path}:2: unknown setting [sync] intervall; did you mean [sync] interval?" in result.stderr
    assert "SPMIRROR_APIKEY: not a setting; did you mean SPMIRROR_API_KEY?" in result.stderr
    assert "SPMIRROR_WEBHOOKS_TOKEN" not in result.stderr and "max_in_flight" not in result.stderr
    assert KEY not in result.stderr + result.stdout


def test_the_command_module_imports_nothing_heavy():
    """mirror.commands.config stays light, so `spmirror config` starts fast: no httpx, SQLAlchemy,
    APScheduler or uvicorn (the CLI imports other commands' modules only when they run)."""
    heavy = ("httpx", "sqlalchemy", "sqlmodel", "apscheduler", "uvicorn", "structlog")
    code = ("import sys, mirror.commands.config; "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_example_is_declared_as_package_data():
    """pyproject.toml ships mirror/config.example.toml in the wheel: without it a pip install has
    no example, and `spmirror config --example` fails outside a clone."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "config.example.toml" in project["tool"]["setuptools"]["package-data"]["mirror"]
