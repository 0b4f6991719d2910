"""`spmirror config`: every effective setting and where it came from; `--example`, the documented file.

Reads settings only: no API call, no API key needed, no database opened. Imports nothing heavy
(no httpx, SQLAlchemy, APScheduler or uvicorn), so it answers as fast as `--help`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from mirror.config import SETTINGS, Settings, example_text
from mirror.exit_codes import EXIT_OK
from mirror.redaction import MASK, redact_text


class PrintExample(argparse.Action):
    """`--example` prints the shipped example and exits while the arguments are parsed, like
    `--version`: before any setting is read, so it works even when the current settings do not."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any):
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        sys.stdout.write(example_text())
        parser.exit(EXIT_OK)


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "config", parents=[common], help="show the effective settings and where each came from",
        description="Show every setting's effective value and where it came from: its default, the "
        "config file (path:line), an environment variable, or a command-line option. Secrets (the API "
        "key, the webhook token) are shown as ***. Makes no API call and needs no API key; a bad "
        "setting is reported like any command's (exit 2).",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--example", action=PrintExample,
                        help="print the documented example config (every setting, its default and its "
                        "environment variable) and exit")
    parser.set_defaults(handler=run, needs_api_key=False)


def run(args: argparse.Namespace, settings: Settings) -> int:
    text = json.dumps(describe(settings), indent=2) if args.json else render(settings)
    # Belt and braces: the values of secret settings are masked below; this also catches one
    # pasted into another setting (a key inside the URL, say).
    print(redact_text(text, settings.secrets()))
    return EXIT_OK


def shown(settings: Settings, section: str, key: str) -> Any:
    """The value as it may be shown: a set secret is MASK, an unset one the empty string."""
    setting = next(s for s in SETTINGS if (s.section, s.key) == (section, key))
    value = settings[(section, key)]
    return (MASK if value else "") if setting.secret else value


def describe(settings: Settings) -> dict:
    """The JSON form: `settings[section][key]` holds value, origin (kind, name, line, text),
    environment (the variable that sets it) and secret. Durations are seconds, shares fractions."""
    sections: dict[str, dict] = {}
    for setting in SETTINGS:
        origin = settings.origins[(setting.section, setting.key)]
        sections.setdefault(setting.section, {})[setting.key] = {
            "value": shown(settings, setting.section, setting.key),
            "origin": {"kind": origin.kind, "name": origin.name or None, "line": origin.line, "text": str(origin)},
            "environment": setting.env_name,
            "secret": setting.secret,
        }
    return {"config_file": str(settings.source) if settings.source else None, "settings": sections}


def render(settings: Settings) -> str:
    """TOML a person can read (and paste): one `key = value` line per setting, its origin beside it."""
    lines = [f"# config file: {settings.source}" if settings.source else
             "# config file: none found (defaults, the environment and options apply)"]
    rows: list[tuple[str, str] | str] = []
    section = None
    for setting in SETTINGS:
        if setting.section != section:
            section = setting.section
            rows += ["", f"[{section}]"]
        value = toml_value(shown(settings, setting.section, setting.key))
        rows.append((f"{setting.key} = {value}", str(settings.origins[(setting.section, setting.key)])))
    width = max(len(row[0]) for row in rows if isinstance(row, tuple))
    lines += [row if isinstance(row, str) else f"{row[0]:<{width}}  # {row[1]}" for row in rows]
    return "\n".join(lines)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value)  # a JSON string is a TOML basic string
