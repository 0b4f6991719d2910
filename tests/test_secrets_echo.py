"""Error pages that echo the request, key included, leave no piece of the key anywhere.

Every action the client makes meets the simulator's echo faults (HTML and JSON error pages,
4xx and 5xx, the key whole, cut to 20 characters, or re-encoded) through the real `spmirror`
in subprocesses with debug logging. Then every output (stdout, stderr) and every file the runs
left (the database, its WAL and shared memory, anything else under the home directory) is
searched for any 8-character piece of the key, written plainly or in the escaped forms a page
may write it in. The runs happen once per module; each test reads what they left. In-process,
every client call's ApiError (str, detail, code, args, traceback) is checked the same way.
"""

from __future__ import annotations

import html
import json
import os
import re
import sqlite3
import subprocess
import sys
import traceback
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from mirror.api import SolarProofClient
from mirror.errors import ApiError
from mirror.retry import RetryPolicy
from mirror.simulator.server import SimulatorServer
from sqlite_edit import edit, query, sql_text

# Long and distinctive, with characters that URLs, JSON and HTML each write their own way, and
# no 8-character run that could be hex or ordinary text.
ECHO_KEY = "sk-ECHO/CANARY+quartz=JUNIPER~wolfram/Yx7Kp2Vn/mLq9Zt!Qvwx_Tzmb"
PIECE = 8
HOOK = "https://mirror.example.com.au/webhooks/tok3n"

# (kind, status, echo): HTML and JSON pages, 4xx and 5xx, each way of showing the key.
STYLES = [("echo_html", 500, "full"), ("echo_json", 400, "full"), ("echo_html", 400, "prefix"),
          ("echo_json", 503, "urlencoded"), ("echo_html", 502, "urlencoded"), ("echo_json", 422, "prefix")]
# An action whose failure ends its run meets two styles, one run each: an HTML and a JSON page,
# one 4xx and one 5xx; across these actions every `echo` setting is met too. No 404 (a missing
# action or customer is no failure) and no 401/403 (a refused key ends the run as exit 2).
FATAL = {
    "getallcustomers": [("echo_html", 500, "full"), ("echo_json", 400, "prefix")],
    "getcustomer": [("echo_json", 503, "urlencoded"), ("echo_html", 400, "full")],
    "getcustomerByemail": [("echo_html", 502, "prefix"), ("echo_json", 422, "full")],
    "deletecustomer": [("echo_json", 500, "full"), ("echo_html", 409, "urlencoded")],
    "subscribe_customer": [("echo_html", 500, "urlencoded"), ("echo_json", 400, "prefix")],
    "unsubscribe_customer": [("echo_json", 502, "prefix"), ("echo_html", 400, "urlencoded")],
}
# Actions whose failures each run survives meet every style in one run.
SURVIVED = ("getcustomerofproject", "createcustomer", "updatecustomer")


def key_forms(key: str) -> set[str]:
    """The key as a page may write it: plain, URL-encoded (upper and lower hex, and as PHP's
    urlencode writes it), JSON-escaped as PHP writes it, HTML-escaped."""
    encoded = quote(key, safe="")
    return {key, encoded, re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), encoded),
            quote_plus(key, safe="").replace("~", "%7E"), json.dumps(key)[1:-1].replace("/", "\\/"),
            html.escape(key)}


# The print_r line of a page that showed the key, once masked (no pattern masks it: only the key's pieces).
MASKED_DUMP = re.compile(r"\[api_key\] =(>|&gt;) \*\*\*")
LEAK_PIECES = sorted({form[i:i + PIECE] for form in key_forms(ECHO_KEY) for i in range(len(form) - PIECE + 1)})


def pieces_in(data: str | bytes) -> list[str]:
    """Every 8-character piece of the key (in any of its forms) found in `data`."""
    if isinstance(data, bytes):
        return [p for p in LEAK_PIECES if p.encode() in data]
    return [p for p in LEAK_PIECES if p in data]


# Every call the client makes, by action.
CALLS = {
    "getallcustomers": lambda c: c.fetch_customer_page(1),
    "getcustomer": lambda c: c.fetch_customer(70001),
    "getcustomerByemail": lambda c: c.fetch_customers_by_email("someone@example.com.au"),
    "getcustomerid": lambda c: c.fetch_customer_id_by_email("someone@example.com.au"),
    "getcustomerofproject": lambda c: c.fetch_customer_of_project(1),
    "createcustomer": lambda c: c.create_customer({"customerfirstname": "Echo", "customeremail": "e@example.com.au"}),
    "updatecustomer": lambda c: c.update_customer(70001, {"customerphone2": "0411 000 000"}),
    "deletecustomer": lambda c: c.delete_customer(70001),
    "subscribe_customer": lambda c: c.subscribe_webhook(HOOK + "/customer_created", "customer_created"),
    "unsubscribe_customer": lambda c: c.unsubscribe_webhook(HOOK + "/customer_created"),
}


@pytest.mark.parametrize("style", STYLES, ids=lambda s: f"{s[0]} {s[1]} {s[2]}")
def test_every_api_error_from_an_echo_page_is_clean(style):
    """For every call and every echo page, the ApiError's str, detail, code, args and traceback hold no piece of the key."""
    kind, status, echo = style
    with SimulatorServer(customers=3, seed=1, api_key=ECHO_KEY) as sim, \
            SolarProofClient(sim.url, ECHO_KEY, retry=RetryPolicy(attempts=1)) as client:
        for action, call in CALLS.items():
            sim.faults.script(kind, action=action, status=status, echo=echo)
            with pytest.raises(ApiError) as caught:
                call(client)
            error = caught.value
            shown = [str(error), error.detail, str(error.code), repr(error.args), repr(error),
                     "".join(traceback.format_exception(error))]
            assert not pieces_in("\n".join(shown)), (action, shown)
            assert MASKED_DUMP.search(error.detail), (action, error.detail)  # the page showed the key


class EchoRuns:
    """A simulator whose key is ECHO_KEY, a home directory, and everything the runs printed."""

    def __init__(self, sim: SimulatorServer, home: Path):
        self.sim, self.home = sim, home
        self.db = home / "mirror.db"
        self.outputs: dict[str, str] = {}
        self.codes: dict[str, int] = {}
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("SPMIRROR_") and k not in ("CREDENTIALS_DIRECTORY", "STATE_DIRECTORY",
                                                                   "CONFIGURATION_DIRECTORY")}
        self.env.update(XDG_CONFIG_HOME=str(home / "xdg"), SPMIRROR_API_URL=sim.url, SPMIRROR_API_KEY=ECHO_KEY,
                        SPMIRROR_DB=str(self.db), SPMIRROR_LOGGING_LEVEL="debug", SPMIRROR_LOGGING_FORMAT="json",
                        # One try: each failure surfaces at once (and no backoff sleeps).
                        SPMIRROR_API_ATTEMPTS="1", SPMIRROR_API_MAX_IN_FLIGHT="2", SPMIRROR_SYNC_ENRICH="true",
                        SPMIRROR_SYNC_PUSH_DELETES="true")

    def run(self, label: str, *args: str, faults: list[tuple] = (), action: str | None = None) -> None:
        """`spmirror ARGS` with `faults` scripted for `action`; every scripted fault must be met."""
        for kind, status, echo in faults:
            self.sim.faults.script(kind, action=action, status=status, echo=echo)
        result = subprocess.run([sys.executable, "-m", "mirror", *args], env=self.env, cwd=self.home,
                                capture_output=True, text=True, timeout=60)
        self.outputs[f"{label} stdout"] = result.stdout
        self.outputs[f"{label} stderr"] = result.stderr
        self.codes[label] = result.returncode
        assert "Traceback" not in result.stderr, result.stderr
        left = self.sim.faults.settings()["script"]
        assert left == [], f"{label}: faults never met: {left}"

    def remote_ids(self, count: int, skip: int = 0) -> list[int]:
        rows = query(self.db, "SELECT pkcustomerid FROM customers WHERE sync_state = 'synced' "
                              "ORDER BY pkcustomerid LIMIT ? OFFSET ?", (count, skip))
        return [r["pkcustomerid"] for r in rows]

    def files(self) -> dict[str, bytes]:
        return {str(p.relative_to(self.home)): p.read_bytes() for p in sorted(self.home.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def echoed(tmp_path_factory) -> EchoRuns:
    """Every action through every echo its runs can meet, and `spmirror status` afterwards."""
    with SimulatorServer(customers=40, seed=23, api_key=ECHO_KEY) as sim:
        runs = EchoRuns(sim, tmp_path_factory.mktemp("echo"))
        # Enrichment (getcustomerofproject) on the first sync: each failure is logged, the sync goes on.
        runs.run("first sync", "sync", faults=STYLES, action="getcustomerofproject")
        assert runs.codes["first sync"] == 0, runs.outputs["first sync stderr"]
        # An idle reader held open keeps the WAL file (with every frame the runs wrote) on disk.
        reader = sqlite3.connect(runs.db)
        reader.execute("SELECT count(*) FROM customers").fetchone()
        for i, style in enumerate(FATAL["getallcustomers"]):
            runs.run(f"walk {i}", "sync", "--pull-only", faults=[style], action="getallcustomers")
        # An update re-reads its customer first: by id, then (on a server without getcustomer) by email.
        [reread] = runs.remote_ids(1)
        edit(runs.db, f"UPDATE customers SET customerphone2 = '0411 000 001' WHERE pkcustomerid = {reread}")
        for i, style in enumerate(FATAL["getcustomer"]):
            runs.run(f"re-read {i}", "sync", "--push-only", faults=[style], action="getcustomer")
        sim.quirks.update(getcustomer=False)
        for i, style in enumerate(FATAL["getcustomerByemail"]):
            runs.run(f"re-read by email {i}", "sync", "--push-only", faults=[style], action="getcustomerByemail")
        sim.quirks.update(getcustomer=True)
        # Creates and updates: a refused one is flagged on its row, a lost one noted, and the run goes on.
        updated = runs.remote_ids(len(STYLES) - 1, skip=1)
        edit(runs.db, *[f"UPDATE customers SET customerphone2 = '0411 000 1{n:02}' WHERE pkcustomerid = {rid}"
                        for n, rid in enumerate(updated)],
             *[f"INSERT INTO customers (customerfirstname, customersurname, customeremail, customerphone1, "
               f"fkcustomertypeid) VALUES ('Echo', 'Number{n}', {sql_text(f'echo{n}@example.com.au')}, "
               f"'0400 555 66{n}', 1)" for n in range(len(STYLES))])
        for kind, status, echo in STYLES:
            sim.faults.script(kind, action="createcustomer", status=status, echo=echo)
        runs.run("push", "sync", "--push-only", faults=STYLES, action="updatecustomer")
        [doomed] = runs.remote_ids(1, skip=len(STYLES) + 2)
        edit(runs.db, f"DELETE FROM customers WHERE pkcustomerid = {doomed}")
        for i, style in enumerate(FATAL["deletecustomer"]):
            runs.run(f"delete {i}", "sync", "--push-only", faults=[style], action="deletecustomer")
        for i, style in enumerate(FATAL["subscribe_customer"]):
            runs.run(f"subscribe {i}", "webhooks", "subscribe", "--url", HOOK, "--event", "customer_created",
                     faults=[style], action="subscribe_customer")
        for i, style in enumerate(FATAL["unsubscribe_customer"]):
            runs.run(f"unsubscribe {i}", "webhooks", "unsubscribe", "--url", HOOK,
                     faults=[style], action="unsubscribe_customer")
        runs.run("status", "status")
        runs.run("status json", "status", "--json")
        runs.injected = sim.faults.injected()
        runs.left = runs.files()
        reader.close()
        return runs


def test_every_action_met_html_and_json_pages_4xx_and_5xx(echoed):
    """Each action the client makes was answered by an HTML and a JSON echo page, a 4xx and a 5xx."""
    met: dict[str, set] = {}
    for fault in echoed.injected:
        met.setdefault(fault["action"], set()).update({fault["kind"], fault["status"] // 100})
    expected = {"echo_html", "echo_json", 4, 5}
    assert met == {action: expected for action in [*FATAL, *SURVIVED]}


def test_the_echoed_errors_reached_every_output(echoed):
    """The echoed pages' text (redacted) reached stderr, sync_runs, the rows, the log and `status`."""
    outputs = echoed.outputs
    failures = [row["error"] for row in query(echoed.db, "SELECT error FROM sync_runs WHERE error IS NOT NULL")]
    for action in ("getallcustomers", "getcustomer", "getcustomerByemail", "deletecustomer", "updatecustomer"):
        assert any(f"{action}: " in error and MASKED_DUMP.search(error) for error in failures), action
    row_errors = [r["sync_error"] for r in query(echoed.db, "SELECT sync_error FROM customers "
                                                            "WHERE sync_error IS NOT NULL")]
    for reason in ("refused the create", "the answer was lost (the write may have been applied: ", "refused the update"):
        assert any(reason in error and MASKED_DUMP.search(error) for error in row_errors), reason
    enrichment = [json.loads(line) for line in outputs["first sync stdout"].splitlines()
                  if '"enrichment_failed"' in line]
    assert len(enrichment) == len(STYLES) and all(MASKED_DUMP.search(e["error"]) for e in enrichment)
    for label in ("subscribe 0", "subscribe 1", "unsubscribe 0", "unsubscribe 1", "walk 0", "delete 1"):
        assert outputs[f"{label} stderr"].startswith("Error: "), label
        assert MASKED_DUMP.search(outputs[f"{label} stderr"]), label
    assert "refused the create" in outputs["status stdout"] and "refused the create" in outputs["status json stdout"]
    assert '"level": "debug"' in outputs["first sync stdout"]  # debug logging really was on


def test_no_piece_of_the_key_in_any_output_or_file(echoed):
    """No 8-character piece of the key, plain or escaped, is in any output or any file the runs left."""
    files = echoed.left
    assert {"mirror.db", "mirror.db-wal"} <= set(files)
    found = {label: pieces_in(text) for label, text in echoed.outputs.items()}
    found.update({name: pieces_in(data) for name, data in files.items()})
    assert {where: pieces for where, pieces in found.items() if pieces} == {}


def test_the_search_finds_what_the_pages_showed():
    """The search itself finds the key as each echo setting shows it (so an empty result means something)."""
    cut = ECHO_KEY[:20]
    urlencoded = quote_plus(ECHO_KEY, safe="").replace("~", "%7E")
    for shown in (ECHO_KEY, cut, urlencoded, html.escape(json.dumps({"k": cut})), ECHO_KEY[9:17]):
        assert pieces_in(f"x {shown} y"), shown
        assert pieces_in(f"x {shown} y".encode()), shown
    assert not pieces_in(ECHO_KEY[9:16]) and not pieces_in("api_key=*** [api_key] => ***")
