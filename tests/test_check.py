"""`spmirror check`, run as a user runs it, against the simulator in each odd case it must
recognise; and the same detection on a mirror's first sync, which stops before any write."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import API_KEY, make_client
from mirror.cli import build_parser
from mirror.commands.simulate import quirks_from
from mirror.commands.sync import sync_once
from mirror.config import load_settings
from mirror.exit_codes import EXIT_OK, EXIT_USAGE
from mirror.probe.calls import LISTING, fetch_answers
from mirror.probe.detect import detect
from mirror.probe.samples import load_samples
from mirror.simulator.journal import WRITE_ACTIONS
from mirror.simulator.quirks import Quirks
from mirror.simulator.server import SimulatorServer
from mirror.store import Store
from mirror.wire import parse_customer
from mirror.wire.page import split_json_array

FIXTURES = Path(__file__).parent / "fixtures" / "samples"
UNKNOWN_WORD = "Site Visit Booked"
EVERY_KEY = ("key", "docs", "page_size", "walk_end", "order", "ids", "getcustomer", "email_lookup", "project_lookup",
             "errors", "dates", "status_words", "type_words", "gst_words", "fields_unknown", "fields_missing",
             "response_times")

# Each simulator the checks run against (customers, quirks), and each check: the simulator it
# asks, the key it gives, the expected exit code, {finding key: level}, and words of a message.
# Odd cases that do not hide each other share a simulator, to keep the module fast.
SIMULATORS = {
    "newer docs": (120, Quirks()),
    "older docs": (120, Quirks.old_docs()),
    "numeric ids, errors in 200": (60, Quirks(int_ids=True, errors_in_200=True)),
    "no getcustomer, 25 a page, unknown status": (60, Quirks(getcustomer=False, page_size=25,
                                                             unknown_status=UNKNOWN_WORD)),
    "past end repeats": (100, Quirks(past_end="last")),
    "past end errors": (100, Quirks(past_end="error")),
}
CHECKS = {
    "newer docs": ("newer docs", API_KEY, EXIT_OK, dict.fromkeys(EVERY_KEY, "ok"), {"docs": "newer docs"}),
    "older docs": ("older docs", API_KEY, EXIT_OK,
                   {"docs": "note", "ids": "note", "errors": "note", "dates": "note", "walk_end": "ok",
                    "getcustomer": "ok", "status_words": "ok"},
                   {"docs": "older docs", "ids": "JSON numbers", "errors": "inside HTTP 200",
                    "dates": "carries a time"}),
    "numeric ids": ("numeric ids, errors in 200", API_KEY, EXIT_OK, {"ids": "note", "docs": "note"},
                    {"ids": "JSON numbers", "docs": "mix the two doc generations"}),
    "errors in 200": ("numeric ids, errors in 200", API_KEY, EXIT_OK, {"errors": "note", "getcustomer": "ok"},
                      {"errors": "inside HTTP 200"}),
    "no getcustomer": ("no getcustomer, 25 a page, unknown status", API_KEY, EXIT_OK,
                       {"getcustomer": "note", "email_lookup": "ok"}, {"getcustomer": "does not exist"}),
    "page size 25": ("no getcustomer, 25 a page, unknown status", API_KEY, EXIT_OK,
                     {"page_size": "note", "walk_end": "ok"}, {"page_size": "25 customers a page"}),
    "unknown status": ("no getcustomer, 25 a page, unknown status", API_KEY, EXIT_OK,
                       {"status_words": "note", "type_words": "ok"}, {"status_words": UNKNOWN_WORD}),
    "past end repeats": ("past end repeats", API_KEY, EXIT_USAGE, {"walk_end": "problem"},
                         {"walk_end": "never sees the end"}),
    "past end errors": ("past end errors", API_KEY, EXIT_USAGE, {"walk_end": "problem"},
                        {"walk_end": "Page out of range"}),
    "wrong key": ("newer docs", "sk-not-the-key-0000000000000000", EXIT_USAGE, {"key": "problem"},
                  {"key": "refused the key"}),
}


def clean_env(home: Path, **settings: str) -> dict[str, str]:
    """The test process's environment without SPMIRROR_* or systemd variables, plus `settings`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SPMIRROR_") and k not in ("CREDENTIALS_DIRECTORY", "STATE_DIRECTORY",
                                                          "CONFIGURATION_DIRECTORY")}
    env["XDG_CONFIG_HOME"] = str(home / "xdg")
    env.update(settings)
    return env


def start_check(*args: str, env: dict[str, str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mirror", "check", *args], env=env, cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


@pytest.fixture(scope="module")
def profiles(tmp_path_factory):
    """The checks of CHECKS, run by `spmirror check --json` all at once (one run per simulator and key, to keep
    the module fast): name -> (simulator, exit code, report, stderr)."""
    home = tmp_path_factory.mktemp("check")
    servers = {}
    try:
        for name, (customers, quirks) in SIMULATORS.items():
            servers[name] = SimulatorServer(customers=customers, seed=11, api_key=API_KEY, quirks=quirks).start()
        asked = {(simulator, key) for simulator, key, *_expected in CHECKS.values()}  # one run answers several
        running = {(simulator, key): start_check("--json", env=clean_env(home, SPMIRROR_API_URL=servers[simulator].url,
                                                                         SPMIRROR_API_KEY=key), cwd=home)
                   for simulator, key in asked}
        ran = {}
        for (simulator, key), proc in running.items():
            code, out, err = finish(proc)
            ran[(simulator, key)] = (servers[simulator], code, json.loads(out) if out.startswith("{") else None, err)
        yield {name: ran[(simulator, key)] for name, (simulator, key, *_expected) in CHECKS.items()}
    finally:
        stopping = [threading.Thread(target=server.stop) for server in servers.values()]
        for thread in stopping:
            thread.start()
        for thread in stopping:
            thread.join()


@pytest.mark.parametrize("name", CHECKS)
def test_check_recognises_each_case_and_exits_as_it_should(profiles, name):
    """Against each simulator profile, `spmirror check --json` reports the expected level for each finding, with
    the words that name the case, and exits 0 (notes only) or 2 (a problem)."""
    _simulator, _key, exit_code, levels, words = CHECKS[name]
    _sim, code, report, err = profiles[name]
    assert code == exit_code, err
    assert report is not None and report["exit_code"] == exit_code and report["writes"] == 0
    found = {f["key"]: f for f in report["findings"]}
    for key, level in levels.items():
        assert found[key]["level"] == level, (key, found[key])
    for key, text in words.items():
        assert text in found[key]["message"], (key, found[key]["message"])
    problems = [f for f in report["findings"] if f["level"] == "problem"]
    assert bool(problems) == (exit_code == EXIT_USAGE)
    assert all(f["what_to_do"] for f in problems)
    assert report["recorded_in"] is None  # no database was configured
    assert API_KEY not in json.dumps(report) and API_KEY not in err


@pytest.mark.parametrize("name", SIMULATORS)
def test_check_makes_no_write_call(profiles, name):
    """The simulator's journal shows no write request from the checks, only reads."""
    sim = next(result[0] for check, result in profiles.items() if CHECKS[check][0] == name)
    assert sim.account.write_log() == []
    assert not set(sim.account.call_counts()) & WRITE_ACTIONS
    assert sim.account.call_counts()["getallcustomers"] <= 3 * (2 * 10 + 2)  # few calls, for up to three checks


def test_the_measured_page_size_and_the_walk_end(profiles):
    """The page size is measured from the listing, and the last page found with a few calls."""
    page_sizes = {name: next(f["value"] for f in profiles[name][2]["findings"] if f["key"] == "page_size")
                  for name in ("newer docs", "page size 25")}
    assert page_sizes["newer docs"]["size"] == 50 and page_sizes["page size 25"]["size"] == 25
    walk_end = next(f["value"] for f in profiles["newer docs"][2]["findings"] if f["key"] == "walk_end")
    assert walk_end["last_page"] == 3 and walk_end["on_last_page"] == 20 and walk_end["after_last"] == "[]"


def test_the_text_report_has_one_line_per_finding(tmp_path):
    """Without --json: one line per finding (level, key, what was seen), a verdict, and whether it was recorded."""
    with SimulatorServer(customers=60, seed=11, api_key=API_KEY, quirks=Quirks(unknown_status=UNKNOWN_WORD)) as sim:
        code, out, err = finish(start_check(env=clean_env(tmp_path, SPMIRROR_API_URL=sim.url,
                                                          SPMIRROR_API_KEY=API_KEY), cwd=tmp_path))
    assert code == EXIT_OK and err == ""
    lines = out.splitlines()
    assert lines[0].startswith(f"spmirror check of {sim.url}: ") and lines[0].endswith("read calls, no writes")
    for key in EVERY_KEY:
        [line] = [line for line in lines if re.match(rf"  (ok|note|problem) +{key} ", line)]
        assert (line.split()[0] == "note") == (key == "status_words"), line
    assert f"'{UNKNOWN_WORD}'" in out and "what to do:" in out
    assert "Nothing here would make a sync wrong (1 note)." in lines and lines[-1].startswith("Not recorded")


def test_an_unreachable_api_exits_75_with_one_line(tmp_path):
    """Nothing listening at the URL: exit 75, an Error and a Try line, no traceback, no key."""
    with SimulatorServer(api_key=API_KEY) as sim:
        url = sim.url
    env = clean_env(tmp_path, SPMIRROR_API_URL=url, SPMIRROR_API_KEY=API_KEY, SPMIRROR_API_ATTEMPTS="1")
    code, out, err = finish(start_check(env=env, cwd=tmp_path))
    assert code == 75 and out == ""
    said = [line for line in err.splitlines() if not line.startswith("{")]  # off a terminal, logs are JSON lines
    assert [line.split(":")[0] for line in said] == ["Error", "Try"], err
    assert "could not" in said[0] or "gave up" in said[0]
    assert API_KEY not in err


def test_bad_input_gets_one_line_and_no_call(tmp_path):
    """--save-samples naming a file, or no key at all: exit 2 with one Error line, and no API call."""
    target = tmp_path / "taken"
    target.write_text("")
    with SimulatorServer(api_key=API_KEY) as sim:
        env = clean_env(tmp_path, SPMIRROR_API_URL=sim.url, SPMIRROR_API_KEY=API_KEY)
        file_given = finish(start_check("--save-samples", str(target), env=env, cwd=tmp_path))
        no_key = finish(start_check(env=clean_env(tmp_path, SPMIRROR_API_URL=sim.url), cwd=tmp_path))
        assert sim.account.call_counts() == {}
    for code, out, err in (file_given, no_key):
        assert code == EXIT_USAGE and out == "" and "Traceback" not in err
        assert err.startswith("Error: ") and len([line for line in err.splitlines() if line.startswith("Error")]) == 1
    assert "is a file, not a directory" in file_given[2] and "SPMIRROR_API_KEY" in no_key[2]


def _strings(value) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


def test_saved_samples_hold_no_personal_data_or_key_and_give_the_same_findings(tmp_path):
    """--save-samples writes every answer with names, emails, phones, companies, addresses and ABNs masked and no
    key; read back, they give the findings the live check printed; with --db the findings are recorded."""
    samples, db = tmp_path / "samples", tmp_path / "state" / "mirror.db"
    with SimulatorServer(customers=120, seed=11, api_key=API_KEY) as sim:
        env = clean_env(tmp_path, SPMIRROR_API_URL=sim.url, SPMIRROR_API_KEY=API_KEY, SPMIRROR_DB=str(db))
        code, out, err = finish(start_check("--json", "--save-samples", str(samples), env=env, cwd=tmp_path))
        people = sim.account.snapshot()
    assert code == EXIT_OK, err
    report = json.loads(out)
    personal = {value for record in people["customers"] for field in ("first_name", "last_name", "email", "phone1",
                                                                      "phone2", "company_name", "company_phone", "abn")
                if (value := record[field])}
    personal |= {value for user in people["users"] for field in ("first_name", "last_name", "email", "phone_number",
                                                                 "username") if (value := user.get(field))}
    personal |= {project["site_address"]["street"] for record in people["customers"] for project in record["projects"]}
    files = sorted(samples.iterdir())
    assert len(files) == report["calls"] + 1  # one per answer and calls.json
    every_text = "\n".join(path.read_text() for path in files)
    assert API_KEY not in every_text and API_KEY[:12] not in every_text
    for path in files:
        if path.suffix == ".json":
            leaked = set(_strings(json.loads(path.read_text()))) & personal
            assert not leaked, (path.name, sorted(leaked)[:3])
    for value in personal:
        if "@" in value or sum(c.isdigit() for c in value) >= 8:  # emails and phone numbers, anywhere in the text
            assert value not in every_text, value
    again = detect(load_samples(samples))
    assert [(f.key, f.level) for f in again] == [(f["key"], f["level"]) for f in report["findings"]]
    assert report["recorded_in"] == str(db)
    rows = sqlite3.connect(db).execute("SELECT key, level, source FROM api_findings ORDER BY key").fetchall()
    assert sorted(rows) == sorted((f["key"], f["level"], "check") for f in report["findings"])
    assert API_KEY not in db.read_bytes().decode("latin-1")


@pytest.mark.parametrize("fixture, generation", [("newer_docs", "newer"), ("older_docs", "older")])
def test_committed_samples_parse_and_give_their_findings(fixture, generation):
    """Saved samples committed as fixtures (one per doc generation) parse as the mirror parses answers, and
    detection on them finds their generation and no problem."""
    answers = load_samples(FIXTURES / fixture)
    pages = [a for a in answers if a.action == "getallcustomers" and a.records]
    assert pages
    for answer in pages:
        for record in split_json_array(answer.text):
            assert parse_customer(record.value).remote_id > 0
    for answer in answers:
        if answer.action in ("getcustomerByemail", "getcustomer", "getcustomerofproject"):
            assert parse_customer(answer.body).remote_id > 0
    findings = {f.key: f for f in detect(answers)}
    assert findings["docs"].value["generation"] == generation
    assert not [f for f in findings.values() if f.level == "problem"]


# -- the first sync -------------------------------------------------------------------------------------

def settings_for(sim: SimulatorServer, db: Path, **env: str):
    return load_settings(env={"SPMIRROR_API_URL": sim.url, "SPMIRROR_API_KEY": API_KEY, "SPMIRROR_DB": str(db),
                              **env})


def count(db: Path, sql: str) -> int:
    con = sqlite3.connect(db)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


def test_a_first_sync_stops_before_any_write_on_a_problem_and_records_the_findings(tmp_path, capsys):
    """A new mirror's first sync against a listing whose end a walk cannot see exits 2 with the check's message,
    having written no customer, no account pin and nothing in Solar Proof; the findings are recorded."""
    db = tmp_path / "mirror.db"
    with SimulatorServer(customers=100, seed=11, api_key=API_KEY, quirks=Quirks(past_end="last")) as sim:
        Store.open(db).close()
        con = sqlite3.connect(db)  # a person's INSERT, which this sync would push: it must not be
        con.execute("INSERT INTO customers (customerfirstname, customersurname, customeremail, customerphone1, "
                    "fkcustomertypeid) VALUES ('Ada', 'Lovelace', 'ada@example.com', '0400 000 001', 1)")
        con.commit()
        con.close()
        code, report = sync_once(settings_for(sim, db))
        assert sim.account.write_log() == []
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and report.result == "refused"
    assert "problem walk_end:" in err and "what to do:" in err and "nothing was written" in err
    assert count(db, "SELECT count(*) FROM customers WHERE pkcustomerid IS NOT NULL") == 0  # none pulled
    assert count(db, "SELECT count(*) FROM customers WHERE sync_state = 'pending'") == 1  # nor pushed
    assert count(db, "SELECT count(*) FROM customer_base") == 0
    assert count(db, "SELECT count(*) FROM mirror_account") == 0
    assert count(db, "SELECT count(*) FROM api_findings WHERE key = 'walk_end' AND level = 'problem' "
                     "AND source = 'first_sync'") == 1
    assert count(db, "SELECT count(*) FROM sync_runs WHERE result = 'refused' AND error LIKE '%walk_end%'") == 1


def test_a_first_sync_walks_with_the_page_size_it_found(tmp_path):
    """Against 25 customers a page, a new mirror's first sync gets every customer (a walk expecting 50 would stop
    at page 1), records the size, and the next sync walks the same way with nothing changed."""
    db = tmp_path / "mirror.db"
    with SimulatorServer(customers=130, seed=11, api_key=API_KEY, quirks=Quirks(page_size=25)) as sim:
        settings = settings_for(sim, db)
        code, report = sync_once(settings)
        assert code == EXIT_OK and report.complete and report.listed == 130 and report.pages == 6
        assert count(db, "SELECT count(*) FROM customers") == 130
        assert count(db, "SELECT count(*) FROM api_findings WHERE key = 'page_size' AND level = 'note' "
                         "AND source = 'first_sync' AND json_extract(value_json, '$.size') = 25") == 1
        code, report = sync_once(settings)
        assert code == EXIT_OK and report.listed == 130 and report.unchanged == 130 and report.delete_candidates == 0
        assert sim.account.write_log() == []


def test_a_page_size_the_check_records_is_used_by_an_existing_mirror(tmp_path):
    """A mirror synced at 50 a page, whose server then serves 25: `spmirror check --db` records 25, and the next
    sync lists every customer again (no delete candidates), where a walk expecting 50 would see only page 1."""
    db = tmp_path / "mirror.db"
    with SimulatorServer(customers=80, seed=11, api_key=API_KEY) as sim:
        settings = settings_for(sim, db)
        assert sync_once(settings)[0] == EXIT_OK
        sim.quirks.update(page_size=25)
        env = clean_env(tmp_path, SPMIRROR_API_URL=sim.url, SPMIRROR_API_KEY=API_KEY)
        code, out, err = finish(start_check("--db", str(db), env=env, cwd=tmp_path))
        assert code == EXIT_OK, err
        assert f"Recorded in {db}" in out
        code, report = sync_once(settings)
        assert code == EXIT_OK and report.listed == 80 and report.delete_candidates == 0 and report.pages == 4


def test_a_later_sync_makes_no_probe_calls(tmp_path):
    """Only the first sync probes: a mirror already synced walks the listing and nothing more."""
    db = tmp_path / "mirror.db"
    with SimulatorServer(customers=60, seed=11, api_key=API_KEY) as sim:
        settings = settings_for(sim, db)
        assert sync_once(settings)[0] == EXIT_OK
        assert sim.account.call_counts().get("spmirror-check-no-such-action") == 1
        before = sim.account.call_counts()
        assert sync_once(settings)[0] == EXIT_OK
        after = sim.account.call_counts()
    assert {action: after[action] - before.get(action, 0) for action in after} == {
        "getallcustomers": 2, "spmirror-check-no-such-action": 0}


def test_simulate_serves_the_odd_cases_by_its_flags():
    """`spmirror simulate` flags select the doc generation and each odd case."""
    parser = build_parser()
    args = parser.parse_args(["simulate", "--old-docs", "--page-size", "25", "--unknown-status", UNKNOWN_WORD,
                              "--past-end", "error", "--no-getcustomer"])
    assert quirks_from(args) == Quirks.old_docs().update(page_size=25, unknown_status=UNKNOWN_WORD, past_end="error",
                                                          getcustomer=False)
    args = parser.parse_args(["simulate", "--int-ids", "--errors-in-200"])
    assert quirks_from(args) == Quirks(int_ids=True, errors_in_200=True)
    for bad in (["--page-size", "0"], ["--page-size", "1001"], ["--past-end", "wrap"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["simulate", *bad])
    with pytest.raises(ValueError):
        Quirks(page_size=True)


# -- servers the simulator does not play: one call answered otherwise ----------------------------------

class AnsweredOtherwise:
    """The client's probe reads against the simulator, except where `answer(action, params)` gives
    (status, content type, text) of its own: a server that differs from the simulator in one call."""

    def __init__(self, client, answer):
        self.client, self.answer = client, answer

    def probe_read(self, action, params=None):
        own = self.answer(action, params or {})
        return (*own, 0.001) if own is not None else self.client.probe_read(action, params)


def probe(sim, clock, answer=lambda _action, _params: None, source=None) -> dict:
    with make_client(sim, clock) as client:
        answers = fetch_answers(source(client) if source else AnsweredOtherwise(client, answer))
    return {f.key: f for f in detect(answers)}


WEB_SERVER_404 = (404, "text/html", "<html><head><title>404 Not Found</title></head><body>nginx</body></html>")


def test_errors_inside_200_are_seen_when_an_unknown_action_gets_a_web_servers_404(clock):
    """A server that answers its own errors inside HTTP 200 but leaves an action it does not know to the web
    server's 404 page: the errors finding says errors come inside 200 (getcustomer's NOT_FOUND shows it), not
    that errors come as a bare status."""
    with SimulatorServer(customers=60, seed=11, api_key=API_KEY,
                         quirks=Quirks(errors_in_200=True, getcustomer=False)) as sim:
        found = probe(sim, clock, lambda action, _p: WEB_SERVER_404 if action == "spmirror-check-no-such-action"
                      else None)
    assert found["errors"].level == "note" and found["errors"].value["framing"] == "in_200"
    assert "inside HTTP 200" in found["errors"].message and "404 Not Found" in found["errors"].message
    assert "errors inside HTTP 200" in found["docs"].value["older"]
    assert found["getcustomer"].level == "note"


@pytest.mark.parametrize("answer, level", [
    ((200, "application/json", '{"code":"NOT_FOUND","message":"Unknown action"}'), "note"),
    (WEB_SERVER_404, "note"),
    ((400, "application/json", '{"code":"INVALID_PARAMETERS","message":"Unknown action getcustomer"}'), "problem"),
    ((200, "application/json", '{"code":"UNAUTHORISED","message":"Not allowed"}'), "problem"),
    ((405, "text/html", "<html><title>Method Not Allowed</title></html>"), "problem"),
])
def test_getcustomer_is_called_missing_only_when_the_mirror_falls_back(clock, simulator, answer, level):
    """getcustomer is a note "does not exist" only for the answers on which the mirror's client falls back to the
    email lookup (NOT_FOUND, a 404 page); any other error would fail each sync that re-reads a customer, so it
    is a problem."""
    simulator.quirks.reset()
    found = probe(simulator, clock, lambda action, _p: answer if action == "getcustomer" else None)
    assert found["getcustomer"].level == level, found["getcustomer"].message
    assert ("does not exist here" in found["getcustomer"].message) == (level == "note")


def test_a_server_error_past_the_last_page_is_judged_not_taken_for_an_unreachable_api(clock):
    """A server whose script dies (HTTP 500, every retry) on a page past the end, after a last page that is
    exactly full: the check reports a walk that never sees its end (exit 2), not an API it could not reach."""
    with SimulatorServer(customers=100, seed=11, api_key=API_KEY) as sim:

        class DiesPastTheEnd:
            def __init__(self, client):
                self.client = client

            def probe_read(self, action, params=None):
                if action == LISTING and int((params or {}).get("page", 1)) > 2:
                    sim.faults.script("500", count=4, action=LISTING)  # as many as the client tries
                return self.client.probe_read(action, params)

        found = probe(sim, clock, source=DiesPastTheEnd)
    assert found["walk_end"].level == "problem" and "never sees the end" in found["walk_end"].message
    assert "HTTP 500" in found["walk_end"].message
    assert found["getcustomer"].level == "ok"


def test_an_account_whose_customers_have_no_project_says_the_project_lookup_was_not_tried(clock):
    """No customer on the pages read has a project: the report says getcustomerofproject was not tried (ok), and
    nothing about it is a problem."""
    with SimulatorServer(customers=1, seed=11, api_key=API_KEY) as sim:
        assert sim.account.snapshot()["customers"][0]["projects"] == []  # what this seed holds
        found = probe(sim, clock)
    assert found["project_lookup"].level == "ok" and "not tried" in found["project_lookup"].message
    assert not [f for f in found.values() if f.level == "problem"]
