"""The read shape's fast path gives exactly the general path's customer, or steps aside.

Records are generated from the docs' example with any field swapped for an odd value (numbers
where text belongs, unknown words, bad ids, addresses as JSON text, ...), so both outcomes
occur: read_fast.clean_read must return None or the very Customer read_shape.general_read makes.
"""

from __future__ import annotations

import copy
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mirror.simulator.quirks import Quirks
from mirror.simulator.server import SimulatorServer
from mirror.wire.read_fast import clean_read
from mirror.wire.read_shape import READ_CARRIES, READ_CARRIES_NO_PROJECT, customer_from_read, general_read

EXAMPLE = {
    "customer_id": "70001", "gst_status": "GST Registered", "customer_first_name": "Marites",
    "customer_last_name": "Quinn", "customer_phone_1": "0478 872 335", "customer_phone_2": "",
    "customer_email": "marites@quinnaccounting.com.au", "customer_type": "Commercial",
    "company_name": "Quinn Accounting Pty Ltd", "company_phone": None,
    "owner_user_info": {"user_id": "518", "first_name": "Mei", "last_name": "Chen", "phone_number": "0422 300 419",
                        "email": "mei.chen@example.com", "work_title": "Design Engineer", "username": "meic"},
    "creation_date": "2018-01-01",
    "customer_notes": [{"datetime": "2018-01-17 13:57:19", "note": "Not interested at this stage."}],
    "customer_status": "Mega Status",
    "projects": [
        {"project_id": "802", "project_title": "Project #802",
         "site_address": {"streetnum": "184", "street": "King Street", "suburb": "Bunbury", "state": "WA",
                          "postcode": "6230", "country": "Australia"},
         "solar_panel_quantity": "80", "solar_panel_type": "440W", "inverter_type": "Sungrow SG5.0RS",
         "inverter_quantity": "1", "system_size": "35.2kW", "proposal_link": "/uploads/802.pdf"},
        {"project_id": 801, "project_title": None, "site_address": "1 Hay Street, Perth WA 6000",
         "solar_panel_quantity": 12, "system_size": "6600W"},
    ],
}

ODD = st.one_of(
    st.none(), st.just(""), st.just(" "), st.booleans(), st.integers(-3, 3), st.integers(2**62, 2**64),
    st.floats(allow_nan=False, allow_infinity=False), st.just(1.0), st.just("0"), st.just(" 7 "), st.just("٣"),
    st.just("0000-00-00"), st.just("2018-01-01 10:00:00"), st.just("2018-1-1"), st.just("Residential"),
    st.just("residential"), st.just("Not GST Registered"), st.just("1"), st.just("Plasma Status"),
    st.just("12kW"), st.just("999999999"), st.just("1234567890123456789"), st.just('{"street": "Hay"}'),
    st.just([]), st.just({}), st.just(["x"]), st.just({"note": 5}), st.text(max_size=6),
)

# Every place a value can sit: top-level keys, owner keys, each project's keys and address parts.
PATHS = ([(key,) for key in EXAMPLE] + [("owner_user_info", key) for key in EXAMPLE["owner_user_info"]]
         + [("projects", 0, key) for key in EXAMPLE["projects"][0]]
         + [("projects", 0, "site_address", key) for key in EXAMPLE["projects"][0]["site_address"]]
         + [("projects", 1, key) for key in EXAMPLE["projects"][1]]
         + [("customer_notes", 0, "datetime"), ("customer_notes", 0, "note"), ("projects", 5), ("creation_status",)])


def changed(record: dict, path: tuple, value) -> dict:
    record = copy.deepcopy(record)
    target = record
    for step in path[:-1]:
        target = target[step] if not isinstance(target, list) or step < len(target) else None
        if not isinstance(target, (dict, list)):
            return record
    last = path[-1]
    if isinstance(target, list):
        if last < len(target):
            target[last] = value
        else:
            target.append(value)
    else:
        target[last] = value
    return record


def same_answer(record: dict) -> bool | None:
    """True if the fast path answered (equal to the general one), None if it stepped aside."""
    try:
        expected = general_read(record)
    except Exception as exc:  # a bad id: the general path raises; the fast path must step aside
        assert clean_read(record, READ_CARRIES, READ_CARRIES_NO_PROJECT) is None, exc
        return None
    fast = clean_read(record, READ_CARRIES, READ_CARRIES_NO_PROJECT)
    if fast is None:
        return None
    assert fast == expected, (json.dumps(record, default=str), fast, expected)
    assert fast.problems == ()
    return True


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(PATHS), ODD), min_size=1, max_size=3))
def test_fast_path_equals_the_general_path_or_steps_aside(edits):
    record = EXAMPLE
    for path, value in edits:
        record = changed(record, path, value)
    same_answer(record)


def test_the_docs_example_and_every_simulator_shape_take_the_fast_path():
    """The generated test would pass vacuously if the fast path never answered: here it must."""
    assert same_answer(EXAMPLE) is True
    answered = []
    for quirks in (Quirks(), Quirks(int_ids=True), Quirks(notes_as_string=True), Quirks(status_as_number=True)):
        with SimulatorServer(customers=60, seed=3, quirks=quirks) as sim:
            records = [sim.account.read_shape(remote_id) for remote_id in sim.account.ids()]
        answered.append(sum(same_answer(record) is True for record in records))
        assert all(customer_from_read(record) == general_read(record) for record in records)
    assert answered == [60, 60, 60, 60], answered
