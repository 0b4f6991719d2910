"""Checks before anything is sent: a required field of only spaces is empty, and says so."""

from __future__ import annotations

import pytest

from mirror.exit_codes import EXIT_OK
from mirror.validation import problems_of
from sqlite_edit import edit, query, row_of
from test_push import Mirror, insert_sql, new_customer, unique_email
from mirror.simulator.server import SimulatorServer
from conftest import API_KEY


@pytest.mark.parametrize("blank", ["", "   ", "\t", " \n "])
def test_a_required_field_of_only_white_space_is_empty(blank):
    """Required fields that are empty or hold only white space are named; the message says spaces count as empty."""
    fields = {**new_customer("a@example.com.au"), "customersurname": blank}
    [problem] = problems_of(fields, creating=True)
    assert problem.startswith("customersurname is required and ")
    assert ("only spaces" in problem) == bool(blank)
    assert problems_of({"customerfirstname": blank}, creating=False) != []
    assert problems_of({"customerphone2": blank}, creating=False) == []  # optional: may be emptied


def test_rows_with_blank_required_fields_are_flagged_and_never_sent(tmp_path):
    """An INSERT with a surname of spaces and an UPDATE of a first name to spaces: both rows 'error' naming the
    column, no call to the API, the other rows unaffected."""
    with SimulatorServer(customers=60, seed=9, api_key=API_KEY) as sim:
        m = Mirror(sim, tmp_path / "mirror.db")
        assert m.sync()[0] == EXIT_OK
        target = sim.account.ids()[4]
        email = unique_email("blank")
        edit(m.db, insert_sql(**{**new_customer(email), "customersurname": "   "}),
             f"UPDATE customers SET customerfirstname = '  ' WHERE pkcustomerid = {target}")
        mark = m.mark()
        code, report = m.sync()
        assert code == EXIT_OK and report.push.errors == 2
        assert m.sent_since(mark) == []
        [new] = query(m.db, "SELECT sync_state, sync_error FROM customers WHERE customeremail = ?", (email,))
        assert new["sync_state"] == "error" and "customersurname is required" in new["sync_error"]
        assert "only spaces" in new["sync_error"]
        row = row_of(m.db, target)
        assert row["sync_state"] == "error" and "customerfirstname is required" in row["sync_error"]
