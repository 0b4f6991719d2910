"""The wire layer: every documented customer shape maps to the canonical customer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import structlog

from mirror.customer import CUSTOMER_COLUMNS, LABEL_COLUMNS
from mirror.errors import WireError
from mirror.wire import (
    customer_from_read,
    customers_from_webhook,
    parse_customer,
    write_body,
)
from mirror.wire.page import split_json_array

FIXTURES = Path(__file__).parent / "fixtures"


def load(name: str):
    return json.loads((FIXTURES / name).read_text())


def test_list_example_from_the_new_docs_parses():
    """The getallcustomers example (with its elided "…" values) maps to canonical fields."""
    (record,) = load("read_list_new.json")
    customer = parse_customer(record)
    assert customer.shape == "read"
    assert customer.remote_id == 71553
    f = customer.fields
    assert f["pkcustomerid"] == 71553
    assert f["customerfirstname"] == "Will" and f["customersurname"] == "Jones"
    assert f["customerphone1"] == "0400 000 888"
    assert f["customerphone2"] is None  # "" from the API is stored as NULL
    assert f["customeremail"] == "mygreatcustomer@willibags.com"
    assert f["fkcustomertypeid"] == 1 and f["customer_type_text"] == "Residential"
    assert f["customergstregistered"] == 0
    assert f["fkcustomerstatusid"] == 0 and f["customer_status_text"] == "No Status Set"
    assert f["created_at"] == "2020-05-26"
    assert f["customer_site_address"] == "175 Pitt Street, Sydney NSW 2000"
    assert f["customerabn"] is None and "customerabn" not in customer.carried
    assert customer.owner.user_id == 221 and customer.owner.username == "user1"
    assert customer.notes[0].datetime == "2020-05-28 15:12:40"
    (project,) = customer.projects
    assert project.project_id == 1640 and project.suburb == "Sydney"
    # "solar_panel_quantity": "…" is not a number: kept out of the integer, and said so.
    assert project.solar_panel_quantity is None
    assert any("solar_panel_quantity" in p for p in customer.problems)
    assert set(f) == set(CUSTOMER_COLUMNS + LABEL_COLUMNS)


def test_lookup_example_parses_projects_and_system_size():
    """The getcustomerByemail example: commercial, GST registered, signed, 17.92 kW project."""
    customer = parse_customer(load("read_by_email_new.json"))
    f = customer.fields
    assert (f["fkcustomertypeid"], f["customergstregistered"], f["fkcustomerstatusid"]) == (2, 1, 2)
    assert f["customer_site_address"] == "418 Murray Street, Perth WA 6000"
    (project,) = customer.projects
    assert project.system_size_kw == pytest.approx(17.92)
    assert project.solar_panel_quantity == 56 and project.inverter_quantity == 1
    assert project.proposal_link == "/uploads/pdfs/849/proposal_849.pdf"
    assert customer.problems == ()


def test_old_docs_quirks_parse():
    """Old getcustomerid quirks: notes as "", status as "0", a datetime creation date."""
    customer = parse_customer(load("getcustomerid_old.json"))
    assert customer.notes == ()
    assert customer.fields["fkcustomerstatusid"] == 0
    # The text column holds the docs' label, so "0" and "No Status Set" are the same customer.
    assert customer.fields["customer_status_text"] == "No Status Set"
    assert customer.fields["created_at"] == "2025-03-09"
    assert customer.owner.phone_number is None  # missing owner fields are tolerated
    assert customer.problems == ()


def test_project_customer_shape_fills_abn_site_and_contact_only():
    """getcustomerofproject maps to the enrichment fields and does not claim the company name."""
    customer = parse_customer(load("project_customer.json"))
    assert customer.shape == "project" and customer.remote_id == 79298
    f = customer.fields
    assert f["customer_site_address"] == "132 Mono Drive, Brisbane, QLD, 4321"
    assert f["customerabn"] is None and f["customergstregistered"] == 0
    assert f["customerphone1"] == "61411549054"
    assert f["customercompanyname"] is None and "customercompanyname" not in customer.carried
    assert "customerabn" in customer.carried and "best_contact_mornings" in customer.carried


def test_project_contact_time_words_map_to_flags():
    """A contactTime text sets the four best-contact flags; an unreadable one leaves them NULL."""
    payload = load("project_customer.json")
    payload["Customer"]["contactTime"] = "Mornings, Evenings"
    f = parse_customer(payload).fields
    assert (f["best_contact_mornings"], f["best_contact_middays"], f["best_contact_afternoons"],
            f["best_contact_evenings"]) == (1, 0, 0, 1)
    payload["Customer"]["contactTime"] = "after lunch on Tuesdays"
    customer = parse_customer(payload)
    assert customer.fields["best_contact_mornings"] is None
    assert any("contactTime" in p for p in customer.problems)


def test_webhook_version_a_shapes():
    """Version A: created carries type and status words; status_change carries new_status."""
    (created,) = customers_from_webhook(load("webhook_a_created.json"))
    assert created.shape == "webhook_a" and created.remote_id == 12345
    assert created.fields["fkcustomertypeid"] == 1 and created.fields["fkcustomerstatusid"] == 1
    assert "customerfirstname" not in created.carried  # customer_name is not split
    (changed,) = customers_from_webhook(load("webhook_a_status_change.json"))
    assert changed.fields["fkcustomerstatusid"] == 2
    assert changed.carried >= {"pkcustomerid", "fkcustomerstatusid", "customeremail"}


def test_webhook_version_b_object_and_array_framing():
    """Version B maps ABN, site address and an ISO timestamp; arrays of objects are accepted."""
    body = load("webhook_b_created.json")
    (customer,) = customers_from_webhook(body)
    assert customer.shape == "webhook_b" and customer.remote_id == 141472
    f = customer.fields
    assert f["customer_site_address"] == "45 Thuringowa Dr, Kirwan QLD 4817, Australia"
    assert f["created_at"] == "2025-10-16"
    assert f["customerabn"] is None and "customerabn" in customer.carried
    assert f["customerfirstname"] == "Hussain" and f["fkcustomertypeid"] == 1
    assert [c.remote_id for c in customers_from_webhook([body, body])] == [141472, 141472]


def test_canonical_shape_parses_every_column():
    """The docs' canonical Customer Object maps one to one, contact times flattened."""
    customer = parse_customer(load("canonical.json"))
    f = customer.fields
    assert customer.shape == "canonical"
    assert f["customerabn"] == "12345678901" and f["fkcustomerstatusid"] == 2
    assert (f["best_contact_mornings"], f["best_contact_afternoons"]) == (1, 0)
    assert customer.problems == ()


@pytest.mark.parametrize(
    ("word", "expected"),
    [("Residential", 1), ("RESIDENTIAL", 1), ("Commercial", 2), ("Large-Scale", 3), ("LARGE-SCALE", 3),
     ("large_scale", 3), ("Large Scale", 3)],
)
def test_type_words_map_case_and_punctuation_insensitively(word, expected):
    """Type words from either doc generation map to their integer."""
    record = {"customer_id": "5", "customer_first_name": "A", "customer_type": word}
    assert customer_from_read(record).fields["fkcustomertypeid"] == expected


@pytest.mark.parametrize(("word", "expected"), [("No Status Set", 0), ("0", 0), ("New Contacts", 1),
                                                ("Signed", 2), ("Mega Status", 3), ("MEGA-STATUS", 3)])
def test_status_words_map(word, expected):
    """Status names and numeric strings map to the status integer."""
    record = {"customer_id": "5", "customer_first_name": "A", "customer_status": word}
    assert customer_from_read(record).fields["fkcustomerstatusid"] == expected


def test_unknown_words_are_kept_raw_and_logged_once():
    """An unknown status leaves the integer NULL, keeps the word, and logs it only once."""
    record = {"customer_id": "5", "customer_first_name": "A", "customer_status": "Awaiting Council Approval"}
    with structlog.testing.capture_logs() as logs:
        first = customer_from_read(record)
        customer_from_read(dict(record, customer_id="6"))
    assert first.fields["fkcustomerstatusid"] is None
    assert first.fields["customer_status_text"] == "Awaiting Council Approval"
    assert any("customer_status" in p for p in first.problems)
    seen = [e for e in logs if e["event"] == "unknown_word_seen"]
    assert len(seen) == 1 and seen[0]["word"] == "Awaiting Council Approval"


@pytest.mark.parametrize("bad_id", [None, "", "abc", "000", -3, 0, True, 1.5, "12a", {"x": 1}, "9" * 40])
def test_a_record_without_a_usable_id_is_rejected_naming_the_field(bad_id):
    """Only the id is fatal, and the error names the id field."""
    with pytest.raises(WireError) as caught:
        customer_from_read({"customer_id": bad_id, "customer_first_name": "A"})
    assert caught.value.field == "customer_id"
    assert "customer_id" in str(caught.value)


def test_mangled_fields_are_tolerated_and_named():
    """Wrong types become NULL with a problem naming each field; ids as ints are fine."""
    record = {
        "customer_id": 77,
        "customer_first_name": {"nested": True},
        "customer_phone_1": 412345678,
        "gst_status": "Maybe",
        "creation_date": "yesterday",
        "customer_notes": 5,
        "projects": ["not a project", {"project_id": "x"}],
        "owner_user_info": "someone",
    }
    customer = customer_from_read(record)
    f = customer.fields
    assert f["pkcustomerid"] == 77
    assert f["customerfirstname"] is None
    assert f["customerphone1"] == "412345678"
    assert f["customergstregistered"] is None and f["created_at"] is None
    text = "\n".join(customer.problems)
    for name in ("customer_first_name", "gst_status", "creation_date", "customer_notes",
                 "projects[0]", "projects[1].project_id", "owner_user_info"):
        assert name in text, name


def test_unrecognised_shape_names_the_problem():
    """A record with no customer id key at all is rejected as an unknown shape."""
    with pytest.raises(WireError, match="not a known customer shape"):
        parse_customer({"name": "x"})
    with pytest.raises(WireError, match="expected a JSON object"):
        parse_customer(["x"])


def test_write_body_maps_the_nine_writable_fields():
    """Canonical writable columns become create/update keys; type as the upper-case word."""
    body = write_body({
        "customerfirstname": "Ann", "customersurname": "Lee", "customeremail": "ann@example.com",
        "customerphone1": "0412 345 678", "customerphone2": None, "fkcustomertypeid": 3,
        "customercompanyname": "", "customercompanyphone": "08 9000 0000", "customergstregistered": 1,
    })
    assert body == {
        "firstname": "Ann", "surname": "Lee", "email": "ann@example.com", "phone1": "0412 345 678",
        "phone2": "", "type": "LARGE-SCALE", "companyname": "", "companyphone": "08 9000 0000",
        "gststatus": 1,
    }


@pytest.mark.parametrize(
    ("fields", "column"),
    [({"customerabn": "1"}, "customerabn"), ({"fkcustomerstatusid": 2}, "fkcustomerstatusid"),
     ({"fkcustomertypeid": 4}, "fkcustomertypeid"), ({"customergstregistered": 2}, "customergstregistered"),
     ({"customeremail": 5}, "customeremail")],
)
def test_write_body_refuses_read_only_columns_and_bad_values(fields, column):
    """A read-only column or an unsendable value raises WireError naming the column."""
    with pytest.raises(WireError) as caught:
        write_body(fields)
    assert caught.value.field == column


def test_page_split_keeps_each_record_text_exactly():
    """A page body splits into records whose text is byte-for-byte what the server sent."""
    body = '[ {"customer_id":"1","x":"é"} ,{"customer_id": 2}]'
    records = split_json_array(body)
    assert [r.text for r in records] == ['{"customer_id":"1","x":"é"}', '{"customer_id": 2}']
    assert records[1].value == {"customer_id": 2}
    assert split_json_array("[]") == [] and split_json_array("{}") is None


@pytest.mark.parametrize("body", ['[{"a":1},', '[{"a":1} {"b":2}]', "<html>", '[{"a":1}] trailing', "[1,]"])
def test_page_split_rejects_truncated_or_garbled_bodies(body):
    """A truncated or garbled page raises ValueError instead of yielding part of it."""
    with pytest.raises(ValueError):
        split_json_array(body)
