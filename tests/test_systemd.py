"""The systemd units: each directive is commented, `systemd-analyze verify` finds nothing to say,
and `systemd-analyze security` rates the services' exposure at 1.5 or less. The templates for
several accounts (spmirror@.service, spmirror-sync@.service and .timer) are checked as instances
(spmirror@franchise1.service, ...), match the single-account units except for the per-instance
paths, and give each instance its own directories, key and config file (tests/test_instances.py
runs two instances end to end).

The checks that run systemd-analyze skip when it is not installed (Debian: apt-get install -y
systemd). They never start a unit, so they need no running systemd and no root.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "systemd"
DAEMON, SYNC, TIMER = "spmirror.service", "spmirror-sync.service", "spmirror-sync.timer"
DAEMON_TEMPLATE, SYNC_TEMPLATE, TIMER_TEMPLATE = "spmirror@.service", "spmirror-sync@.service", "spmirror-sync@.timer"
ALL_UNITS = (DAEMON, SYNC, TIMER, DAEMON_TEMPLATE, SYNC_TEMPLATE, TIMER_TEMPLATE)
SERVICES = (DAEMON, SYNC, DAEMON_TEMPLATE, SYNC_TEMPLATE)
TEMPLATE_OF = {DAEMON: DAEMON_TEMPLATE, SYNC: SYNC_TEMPLATE, TIMER: TIMER_TEMPLATE}
INSTANCE = "franchise1"  # the templates are checked as this instance (systemd needs a name)
SHIPPED_BINARY = "/usr/local/bin/spmirror"
MAX_EXPOSURE = 1.5
# Directives where the daemon and the one-shot sync differ on purpose; all others must match.
DIFFERENT_BY_DESIGN = {
    "Description", "Type", "NotifyAccess", "ExecStart", "ExecReload", "WatchdogSec", "Restart",
    "RestartSec", "RestartPreventExitStatus", "TimeoutStartSec", "TimeoutStopSec", "WantedBy",
}
# Directives where a template differs from its single-account unit: the per-instance paths.
PER_INSTANCE = {"Description", "StateDirectory", "ConfigurationDirectory", "Environment", "LoadCredential"}

ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze is not installed (Debian: apt-get install -y systemd)"
)


def directives(text: str) -> list[tuple[int, str, str, str]]:
    """(line number, section, key, value) for each directive; continuation lines join their key."""
    found: list[tuple[int, str, str, str]] = []
    section = ""
    continued = False
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if continued:
            continued = stripped.endswith("\\")
            continue
        if not stripped or stripped[0] in "#;":
            continue
        if stripped.startswith("["):
            section = stripped.strip("[]")
            continue
        key, _, value = stripped.partition("=")
        found.append((number, section, key.strip(), value.strip()))
        continued = stripped.endswith("\\")
    return found


def values(unit: str) -> dict[str, list[str]]:
    """Every value of every key in the unit, in order (keys such as SystemCallFilter= repeat)."""
    result: dict[str, list[str]] = {}
    for _, _, key, value in directives((UNITS / unit).read_text()):
        result.setdefault(key, []).append(value)
    return result


def instantiated(unit: str, instance: str = INSTANCE) -> str:
    """The name systemd gives an instance of a template (spmirror@.service -> spmirror@NAME.service);
    any other unit keeps its name."""
    return unit.replace("@.", f"@{instance}.")


def expanded(unit: str, instance: str) -> dict[str, list[str]]:
    """`values(unit)` with %i (the instance name, as in the unit's name) replaced, as systemd does."""
    return {k: [v.replace("%i", instance) for v in vs] for k, vs in values(unit).items()}


def console_script() -> Path | None:
    """The installed `spmirror` script: beside this interpreter (a venv), else on PATH."""
    beside = Path(sys.executable).with_name("spmirror")
    if beside.is_file():
        return beside
    found = shutil.which("spmirror")
    return Path(found) if found else None


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SYSTEMD_COLORS="0", SYSTEMD_PAGER="cat", SYSTEMD_LOG_COLOR="0")
    return subprocess.run(
        [ANALYZE, *args], capture_output=True, text=True, encoding="utf-8", errors="replace",
        env=env, timeout=60,
    )


@pytest.fixture
def installed_units(tmp_path: Path) -> Path:
    """The units copied to a temporary directory with ExecStart= pointing at the real script, each
    template as the instance `instantiated(name)` (verify expands %i for the name it is given).

    verify insists that ExecStart='s program exists, and /usr/local/bin/spmirror usually does not
    where the tests run. User=spmirror needs no such help: verify does not look users up (they are
    resolved when the unit starts), so a missing spmirror user is not reported and not faked here.
    """
    script = console_script()
    if script is None:
        pytest.skip("the spmirror console script is not installed (pip install -e .)")
    for name in ALL_UNITS:
        text = (UNITS / name).read_text()
        rewritten = re.sub(
            rf"^ExecStart={re.escape(SHIPPED_BINARY)}(?= )", f'ExecStart="{script}"', text, flags=re.M
        )
        (tmp_path / instantiated(name)).write_text(rewritten)
    return tmp_path


@pytest.mark.parametrize("unit", ALL_UNITS)
def test_every_directive_has_a_comment_directly_above(unit):
    """Each directive in the unit is preceded by its own comment line saying what it does."""
    # systemd has no end-of-line comments (`Type=notify # x` sets Type to "notify # x"), so the
    # comment must be the line above.
    lines = (UNITS / unit).read_text().splitlines()
    bare = [
        f"{unit}:{number}: {key}="
        for number, _, key, _ in directives("\n".join(lines))
        if number == 1 or not lines[number - 2].lstrip().startswith(("#", ";"))
    ]
    assert not bare, "directives without a comment line above them:\n" + "\n".join(bare)


def test_daemon_is_a_notify_service_that_does_not_restart_on_a_config_error():
    """The daemon is Type=notify and RestartPreventExitStatus= holds exit 2 (usage/config error)."""
    daemon = values(DAEMON)
    assert daemon["Type"] == ["notify"]
    assert "2" in " ".join(daemon["RestartPreventExitStatus"]).split()
    assert daemon["Restart"] == ["on-failure"]
    assert daemon["ExecStart"] == [f"{SHIPPED_BINARY} run"]


def test_sync_service_is_a_oneshot_started_by_the_timer():
    """The timer starts the one-shot `spmirror sync` 2 min after boot and 5 min after each start."""
    sync, timer = values(SYNC), values(TIMER)
    assert sync["Type"] == ["oneshot"]
    assert sync["ExecStart"] == [f"{SHIPPED_BINARY} sync"]
    assert "Install" not in {section for _, section, _, _ in directives((UNITS / SYNC).read_text())}
    assert timer["OnBootSec"] == ["2min"] and timer["OnUnitActiveSec"] == ["5min"]
    assert timer["RandomizedDelaySec"] == ["30"] and timer["Persistent"] == ["true"]


@pytest.mark.parametrize("daemon_unit, sync_unit", [(DAEMON, SYNC), (DAEMON_TEMPLATE, SYNC_TEMPLATE)])
def test_sync_service_has_the_daemons_user_credential_and_sandbox(daemon_unit, sync_unit):
    """Both services share every directive except the few that differ by design, so they stay in step."""
    daemon = {k: v for k, v in values(daemon_unit).items() if k not in DIFFERENT_BY_DESIGN}
    sync = {k: v for k, v in values(sync_unit).items() if k not in DIFFERENT_BY_DESIGN}
    assert sync == daemon


@pytest.mark.parametrize("unit", [DAEMON, SYNC, TIMER])
def test_template_matches_its_single_account_unit_except_the_per_instance_paths(unit):
    """A template has its single-account unit's type, restart policy, user and sandbox: only the
    description, directories, config file and credential differ, so the two stay in step."""
    single = {k: v for k, v in values(unit).items() if k not in PER_INSTANCE}
    template = {k: v for k, v in values(TEMPLATE_OF[unit]).items() if k not in PER_INSTANCE}
    assert template == single


@pytest.mark.parametrize("unit", [DAEMON_TEMPLATE, SYNC_TEMPLATE])
def test_each_instance_has_its_own_state_config_and_key(unit):
    """spmirror@NAME gets /var/lib/spmirror/NAME (database, WAL, locks), /etc/spmirror/NAME, its
    config file and key from there, and nothing that points at a path shared with another instance
    or with the single-account unit; two instances share no path."""
    def paths(instance: str) -> dict[str, str]:
        unit_values = expanded(unit, instance)
        assert len(unit_values["StateDirectory"]) == len(unit_values["ConfigurationDirectory"]) == 1
        environment = dict(a.split("=", 1) for e in unit_values.get("Environment", []) for a in e.split())
        credentials = dict(c.split(":", 1) for c in unit_values["LoadCredential"])
        assert not {"ReadWritePaths", "BindPaths", "WorkingDirectory"} & unit_values.keys(), \
            "a writable path must be per instance: check it, then extend this test"
        return {
            "state": "/var/lib/" + unit_values["StateDirectory"][0],
            "config directory": "/etc/" + unit_values["ConfigurationDirectory"][0],
            "config file": environment["SPMIRROR_CONFIG"],
            "key": credentials["api_key"],
        }

    one, two = paths("franchise1"), paths("franchise2")
    assert one == {"state": "/var/lib/spmirror/franchise1", "config directory": "/etc/spmirror/franchise1",
                   "config file": "/etc/spmirror/franchise1/config.toml", "key": "/etc/spmirror/franchise1/api_key"}
    for mine, theirs in ((one, two), (two, one)):
        for path in mine.values():
            assert not any(Path(path).is_relative_to(other) or Path(other).is_relative_to(path)
                           for other in theirs.values()), (path, theirs)
    single = expanded(DAEMON, "")
    shared = {"/var/lib/" + single["StateDirectory"][0], "/etc/spmirror/config.toml",
              *(c.split(":", 1)[1] for c in single["LoadCredential"])}
    assert not shared & set(one.values())


def test_timer_template_starts_the_sync_service_of_its_own_instance():
    """spmirror-sync@NAME.timer starts spmirror-sync@NAME.service: no Unit= naming another one."""
    timer = values(TIMER_TEMPLATE)
    assert "Unit" not in timer
    assert "Install" in {section for _, section, _, _ in directives((UNITS / TIMER_TEMPLATE).read_text())}


@needs_analyze
def test_systemd_analyze_verify_finds_nothing_to_report(installed_units):
    """`systemd-analyze verify` exits 0 and prints no warning for the three units."""
    # verify exits 0 even for an unknown key or an unparsable value, so any output is a failure.
    # --man=no: checking Documentation=man:... pages needs man-db and the pages installed.
    result = analyze("verify", "--man=no", *(str(installed_units / instantiated(name)) for name in ALL_UNITS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert (result.stdout + result.stderr).strip() == ""


@needs_analyze
def test_systemd_analyze_verify_does_report_a_misspelled_directive(installed_units):
    """The verify check above can fail: a misspelled key in a copy of the daemon is reported."""
    unit = installed_units / DAEMON
    unit.write_text(unit.read_text().replace("\nProtectSystem=", "\nProtectSytem="))
    result = analyze("verify", "--man=no", str(unit))
    assert "ProtectSytem" in result.stdout + result.stderr


@needs_analyze
def test_systemd_analyze_verify_expands_the_instance_name(installed_units):
    """verify reads the template as the named instance: a per-instance path that %i turns into a bad
    one is reported (so the clean verify above did check the instance's expanded paths)."""
    unit = installed_units / instantiated(DAEMON_TEMPLATE, "..")
    unit.write_text((installed_units / instantiated(DAEMON_TEMPLATE)).read_text())
    result = analyze("verify", "--man=no", str(unit))
    assert "spmirror/.." in result.stdout + result.stderr


@needs_analyze
@pytest.mark.parametrize("unit", SERVICES)
def test_exposure_level_is_at_most_one_and_a_half(unit, tmp_path):
    """`systemd-analyze security --offline=yes` rates the service's overall exposure at 1.5 or less
    (a template as the instance spmirror@franchise1.service)."""
    copy = tmp_path / instantiated(unit)
    shutil.copyfile(UNITS / unit, copy)
    result = analyze("security", "--offline=yes", str(copy))
    if "offline" in result.stderr and "unrecognized option" in result.stderr:
        pytest.skip("systemd-analyze is older than systemd 250 and has no --offline")
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout
