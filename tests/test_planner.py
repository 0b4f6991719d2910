"""The pull's pure planner: one customer's change against its base, and deletes from a listing."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mirror.changes import CREATE, REFRESH, UPDATE, Pulled
from mirror.customer import CUSTOMER_COLUMNS, LABEL_COLUMNS, Customer, Note, Owner
from mirror.fingerprint import content_hash
from mirror.sync.planner import plan_deletes, plan_remote_change

FIELDS = CUSTOMER_COLUMNS + LABEL_COLUMNS

BASE_FIELDS = {
    **dict.fromkeys(FIELDS),
    "pkcustomerid": 70001,
    "customerfirstname": "Anjali",
    "customersurname": "Davis",
    "customeremail": "anjalidavis@gmail.com",
    "customerphone1": "0450 743 573",
    "fkcustomerstatusid": 2,
    "fkcustomertypeid": 1,
    "customergstregistered": 0,
    "created_at": "2018-01-06",
    "customer_status_text": "Signed",
    "customer_type_text": "Residential",
}
OWNER = Owner(221, "John", "User", "0415 644 644", "user@bigsolarcity.com.au", "Director", "user1")


def pulled(fields: dict | None = None, notes: tuple[Note, ...] = (), owner: Owner | None = OWNER) -> Pulled:
    """A pulled customer whose canonical fields are BASE_FIELDS overridden by `fields`."""
    values = {**BASE_FIELDS, **(fields or {})}
    customer = Customer(values["pkcustomerid"], values, frozenset(FIELDS), "read", {}, notes, (), owner)
    return Pulled(customer, "{}", "raw-hash", content_hash(customer))


BASE_HASH = pulled().content_hash


# -- plan_remote_change -------------------------------------------------------------------


def test_a_customer_without_base_is_created():
    """A pulled customer with no base (never seen) becomes a CREATE with no field diff."""
    change = plan_remote_change(pulled(), None, None)
    assert change.kind == CREATE
    assert change.changed == {}
    assert change.remote_id == 70001


def test_a_missing_base_hash_or_base_fields_means_create():
    """Either half of the base missing is treated as 'never seen': CREATE."""
    assert plan_remote_change(pulled(), BASE_HASH, None).kind == CREATE
    assert plan_remote_change(pulled(), None, BASE_FIELDS).kind == CREATE


def test_same_content_hash_is_a_refresh_without_diff():
    """An unchanged content hash (only the payload text differs) is a REFRESH with nothing changed."""
    change = plan_remote_change(pulled(), BASE_HASH, {})
    assert change.kind == REFRESH
    assert change.changed == {}


def test_changed_fields_are_listed_with_old_and_new_values():
    """A different content hash gives an UPDATE whose diff holds exactly the changed fields as (old, new)."""
    new = pulled({"customerphone1": "0499 000 111", "customersurname": "Nguyen", "customerphone2": "0411 222 333"})
    change = plan_remote_change(new, BASE_HASH, BASE_FIELDS)
    assert change.kind == UPDATE
    assert dict(change.changed) == {
        "customerphone1": ("0450 743 573", "0499 000 111"),
        "customersurname": ("Davis", "Nguyen"),
        "customerphone2": (None, "0411 222 333"),
    }


def test_a_field_cleared_remotely_shows_as_value_to_none():
    """A value the remote side emptied appears in the diff as (old, None)."""
    change = plan_remote_change(pulled({"customeremail": None}), BASE_HASH, BASE_FIELDS)
    assert change.kind == UPDATE
    assert dict(change.changed) == {"customeremail": ("anjalidavis@gmail.com", None)}


def test_integer_columns_diff_by_value():
    """A status change diffs both the integer column and its word, and nothing else."""
    new = pulled({"fkcustomerstatusid": 3, "customer_status_text": "Mega Status"})
    change = plan_remote_change(new, BASE_HASH, BASE_FIELDS)
    assert dict(change.changed) == {"fkcustomerstatusid": (2, 3), "customer_status_text": ("Signed", "Mega Status")}


def test_a_change_only_in_notes_is_an_update_with_no_field_diff():
    """When only notes changed, the hash differs but no customer field does: UPDATE with an empty diff."""
    new = pulled(notes=(Note("2024-01-01 10:00:00", "Called back."),))
    assert new.content_hash != BASE_HASH
    change = plan_remote_change(new, BASE_HASH, BASE_FIELDS)
    assert change.kind == UPDATE
    assert change.changed == {}


# -- plan_deletes -------------------------------------------------------------------------


def test_first_absence_makes_a_candidate_and_confirms_nothing():
    """Customers missing from a complete listing for the first time become candidates only."""
    plan = plan_deletes({1: None, 2: None, 3: None}, {1, 2}, 3, 0.5, False)
    assert plan.new_candidates == {3}
    assert plan.confirmed == frozenset()
    assert plan.reappeared == frozenset()
    assert not plan.refused


def test_a_second_absence_confirms():
    """Only a customer already marked missing and absent again is confirmed."""
    plan = plan_deletes({1: None, 2: "run-a", 3: None}, {3}, 3, 1.0, False)
    assert plan.new_candidates == {1}
    assert plan.confirmed == {2}


def test_a_listed_candidate_reappears():
    """A candidate listed again is reported as reappeared and neither candidate nor confirmed."""
    plan = plan_deletes({1: "run-a", 2: None}, {1, 2}, 2, 0.1, False)
    assert plan.reappeared == {1}
    assert plan.new_candidates == frozenset() and plan.confirmed == frozenset()


def test_listed_ids_without_a_base_are_ignored():
    """New customers (listed, no base) play no part in the delete plan."""
    plan = plan_deletes({1: None}, {1, 99, 100}, 1, 0.1, False)
    assert plan == plan_deletes({1: None}, {1}, 1, 0.1, False)
    assert not (plan.new_candidates | plan.confirmed | plan.reappeared)


def test_the_guard_limit_is_share_of_mirror_size_but_at_least_one():
    """limit = max(1, int(share x size)): 10% of 100 is 10, of 5 is 1, and 0% still allows one."""
    assert plan_deletes({}, set(), 100, 0.10, False).limit == 10
    assert plan_deletes({}, set(), 5, 0.10, False).limit == 1
    assert plan_deletes({}, set(), 1000, 0.0, False).limit == 1
    assert plan_deletes({}, set(), 0, 0.10, False).limit == 1
    assert plan_deletes({}, set(), 250, 0.3, False).limit == 75


def test_confirmed_deletes_up_to_the_limit_are_not_refused():
    """Exactly `limit` confirmed deletes pass the guard."""
    missing = {i: "run-a" for i in range(10)} | {i: None for i in range(10, 100)}
    plan = plan_deletes(missing, set(range(10, 100)), 100, 0.10, False)
    assert len(plan.confirmed) == 10 and plan.limit == 10
    assert not plan.refused


def test_more_confirmed_than_the_limit_is_refused_unless_allowed():
    """limit + 1 confirmed deletes are refused, and allowed when allow_mass_delete is set."""
    missing = {i: "run-a" for i in range(11)} | {i: None for i in range(11, 100)}
    listed = set(range(11, 100))
    refused = plan_deletes(missing, listed, 100, 0.10, False)
    assert refused.refused and len(refused.confirmed) == 11
    allowed = plan_deletes(missing, listed, 100, 0.10, True)
    assert not allowed.refused and allowed.confirmed == refused.confirmed


def test_many_new_candidates_are_not_refused():
    """The guard is about confirmed deletes: a mass of first-time absences is not refused (nothing is removed)."""
    plan = plan_deletes({i: None for i in range(100)}, set(), 100, 0.10, False)
    assert len(plan.new_candidates) == 100
    assert not plan.refused


def test_an_empty_listing_of_a_known_mirror_is_refused_on_confirmation():
    """A remote that suddenly lists nothing cannot wipe the mirror: the confirming run is refused."""
    plan = plan_deletes({i: "run-a" for i in range(50)}, set(), 50, 0.10, False)
    assert plan.refused and len(plan.confirmed) == 50


# -- property -----------------------------------------------------------------------------

ids = st.integers(min_value=1, max_value=60)


@settings(max_examples=300, deadline=None)
@given(
    base=st.dictionaries(ids, st.one_of(st.none(), st.sampled_from(["run-a", "run-b"])), max_size=40),
    listed=st.sets(ids, max_size=40),
    size=st.integers(min_value=0, max_value=200),
    share=st.floats(min_value=0.0, max_value=1.0),
    allow=st.booleans(),
)
def test_plan_deletes_invariants(base, listed, size, share, allow):
    """Confirmed deletes are always previously-missing and absent; listed ids are never candidates or confirmed."""
    plan = plan_deletes(base, frozenset(listed), size, share, allow)
    absent = set(base) - listed
    previously_missing = {i for i, run in base.items() if run is not None}
    assert plan.confirmed <= previously_missing & absent
    assert not (plan.confirmed | plan.new_candidates) & listed
    # Every absent known customer is exactly one of: new candidate, confirmed.
    assert plan.new_candidates | plan.confirmed == absent
    assert not plan.new_candidates & plan.confirmed
    assert plan.new_candidates <= {i for i, run in base.items() if run is None}
    assert plan.reappeared == previously_missing & listed
    assert plan.limit >= 1
    assert plan.refused == (len(plan.confirmed) > plan.limit and not allow)


def test_base_hashes_find_each_stored_hash_and_nothing_else():
    """The pull's compact index of stored raw hashes: a stored hash matches its own customer only;
    an empty or unreadable stored hash (a customer this mirror wrote) matches nothing."""
    from mirror.fingerprint import raw_hash
    from mirror.sync.base_hashes import BaseHashes

    rows = [(3, raw_hash("a")), (7, ""), (8, "not hex"), (9, raw_hash("b")), (2**40, raw_hash("c"))]
    stored = BaseHashes.load(rows)
    assert len(stored) == 5
    assert stored.unchanged(3, raw_hash("a")) and stored.unchanged(9, raw_hash("b"))
    assert stored.unchanged(2**40, raw_hash("c"))
    assert not stored.unchanged(3, raw_hash("b"))  # changed
    assert not stored.unchanged(4, raw_hash("a"))  # never seen
    assert not stored.unchanged(10, raw_hash("b"))  # past the last id
    assert not stored.unchanged(7, "") and not stored.unchanged(8, "not hex")
    assert not BaseHashes().unchanged(3, raw_hash("a"))
