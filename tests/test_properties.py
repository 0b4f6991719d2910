"""Property-based tests of the pure pieces: the three-way merge driven as a two-way sync model,
the delete planner, and the wire layer fed mangled payloads.

Every test is derandomized (a fixed seed per test) so CI runs are deterministic.
"""

from __future__ import annotations

import copy
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, assume, example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from mirror.customer import CUSTOMER_COLUMNS, LABEL_COLUMNS, WRITABLE_FIELDS
from mirror.errors import WireError
from mirror.merge import POLICIES, merge_fields, same
from mirror.sync.planner import DeletePlan, plan_deletes
from mirror.validation import REQUIRED_FOR_CREATE, problems_of
from mirror.wire import customer_from_project, customer_from_read, customers_from_webhook, parse_customer, write_body
from mirror.wire.page import split_json_array

FIXTURES = Path(__file__).parent / "fixtures"
ALL_FIELDS = CUSTOMER_COLUMNS + LABEL_COLUMNS

# Fast, deterministic defaults; each test narrows or widens max_examples.
FAST = dict(deadline=None, derandomize=True, database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# =====================================================================================
# 1. A two-way sync model driving only merge_fields and plan_deletes
# =====================================================================================

NAMES: tuple[str, ...] = tuple(WRITABLE_FIELDS)
# A small alphabet so that collisions (same edit on both sides, edits back to the base) happen.
# None and "" are the same "empty"; 1 and "1" are the same value (SQLite's loose typing).
VALUE = st.sampled_from([None, "", "a", "b", "1", 1])
FIELDS = st.fixed_dictionaries({name: VALUE for name in NAMES})
PICK = st.integers(min_value=0, max_value=1_000)
# Edits favour a few fields, so that separate local and remote edits often meet on one field.
NAME = st.sampled_from(NAMES[:2]) | st.sampled_from(NAMES)
MASS_DELETE_SHARE = 0.5


@dataclass
class World:
    """The model: both sides, the base, and the sync's bookkeeping."""

    remote: dict[int, dict[str, Any]] = field(default_factory=dict)
    local: dict[int, dict[str, Any]] = field(default_factory=dict)
    base: dict[int, dict[str, Any]] = field(default_factory=dict)
    missing_since: dict[int, str | None] = field(default_factory=dict)
    held: set[int] = field(default_factory=set)  # rows in sync_state='conflict': not pushed until settled
    conflicts: dict[tuple[int, str], tuple[Any, Any, Any]] = field(default_factory=dict)  # customer_conflicts
    archive: dict[int, dict[str, Any]] = field(default_factory=dict)  # deleted_customers: last known row
    run: int = 0

    def state(self) -> tuple:
        """Everything a sync may change, except the run counter."""
        return (self.remote, self.local, self.base, self.missing_since, self.held, self.conflicts, self.archive)


@dataclass
class SyncReport:
    """What one model sync did, per (customer, field)."""

    merged: dict[int, tuple[dict, dict, dict]] = field(default_factory=dict)  # id -> (base, local, remote) before
    to_local: dict[tuple[int, str], Any] = field(default_factory=dict)
    pushed: dict[tuple[int, str], Any] = field(default_factory=dict)
    withheld: dict[tuple[int, str], Any] = field(default_factory=dict)  # to_push of a row held in conflict
    conflicts: dict[tuple[int, str], tuple[Any, Any, Any]] = field(default_factory=dict)
    overridden: dict[tuple[int, str], tuple[Any, Any]] = field(default_factory=dict)
    created: set[int] = field(default_factory=set)
    deleted: set[int] = field(default_factory=set)
    held_during_merge: set[int] = field(default_factory=set)
    plan: DeletePlan | None = None

    def changed_anything(self) -> bool:
        return bool(self.to_local or self.pushed or self.conflicts or self.overridden or self.created or self.deleted)


def model_sync(world: World, policy: str, hidden: frozenset[int] = frozenset()) -> SyncReport:
    """One pull+push, applying merge_fields and plan_deletes the way the product does.

    `hidden` customers exist remotely but are missing from this (complete) listing, as when offset
    paging shifts records mid-walk.
    """
    world.run += 1
    report = SyncReport()
    # settle_conflicts: a row whose conflicting fields all hold the remote value again is released.
    for cid in sorted(world.held):
        records = {n: v for (i, n), v in world.conflicts.items() if i == cid}
        if all(same(world.local[cid][n], remote) for n, (_b, _l, remote) in records.items()):
            world.held.discard(cid)
            for n in records:
                del world.conflicts[(cid, n)]
    listed = set(world.remote) - set(hidden)
    for cid in sorted(listed):
        remote = world.remote[cid]
        if cid not in world.base:  # a remote create: the row appears locally
            world.local[cid], world.base[cid] = dict(remote), dict(remote)
            world.missing_since[cid] = None
            report.created.add(cid)
            continue
        base, local = world.base[cid], world.local[cid]
        report.merged[cid] = (dict(base), dict(local), dict(remote))
        merge = merge_fields(base, local, remote, NAMES, policy)
        local.update(merge.to_local)
        report.to_local.update({(cid, n): v for n, v in merge.to_local.items()})
        if cid in world.held:
            report.held_during_merge.add(cid)
            report.withheld.update({(cid, n): v for n, v in merge.to_push.items()})
        else:
            remote.update(merge.to_push)
            report.pushed.update({(cid, n): v for n, v in merge.to_push.items()})
        report.overridden.update({(cid, n): v for n, v in merge.overridden.items()})
        if merge.conflicts:
            # Recorded; local keeps its value; the base takes the remote side (recorded once).
            world.held.add(cid)
            world.conflicts.update({(cid, n): v for n, v in merge.conflicts.items()})
            report.conflicts.update({(cid, n): v for n, v in merge.conflicts.items()})
        world.base[cid] = dict(remote)  # afterwards the base is the remote record as last seen
    plan = plan_deletes(dict(world.missing_since), frozenset(listed), len(world.local), MASS_DELETE_SHARE, False)
    report.plan = plan
    for cid in plan.new_candidates:
        world.missing_since[cid] = f"run-{world.run}"
    for cid in plan.reappeared:
        world.missing_since[cid] = None
    if not plan.refused:
        for cid in sorted(plan.confirmed):
            if cid in world.remote:  # the confirming lookup finds it: not deleted
                world.missing_since[cid] = None
                continue
            world.archive[cid] = world.local.pop(cid)
            del world.base[cid], world.missing_since[cid]
            world.held.discard(cid)
            for key in [k for k in world.conflicts if k[0] == cid]:
                del world.conflicts[key]
            report.deleted.add(cid)
    return report


def _pick(ids, index: int) -> int:
    ids = sorted(ids)
    return ids[index % len(ids)]


class SyncMachine(RuleBasedStateMachine):
    """Random edits on both sides, interleaved with syncs; invariants checked after each sync."""

    policy = "manual"

    def __init__(self) -> None:
        super().__init__()
        self.world = World()
        self.next_id = 1

    def _new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    @initialize(records=st.lists(FIELDS, max_size=4))
    def start_synced(self, records):
        """Start from customers that are already in sync on both sides."""
        for fields in records:
            cid = self._new_id()
            self.world.remote[cid] = dict(fields)
            self.world.local[cid] = dict(fields)
            self.world.base[cid] = dict(fields)
            self.world.missing_since[cid] = None

    # -- edits ------------------------------------------------------------------------

    @precondition(lambda self: self.world.local)
    @rule(pick=PICK, name=NAME, value=VALUE)
    def local_edit(self, pick, name, value):
        """A person edits one field of a row with SQL."""
        self.world.local[_pick(self.world.local, pick)][name] = value

    @precondition(lambda self: self.world.remote)
    @rule(pick=PICK, name=NAME, value=VALUE)
    def remote_edit(self, pick, name, value):
        """Someone edits one field in Solar Proof."""
        self.world.remote[_pick(self.world.remote, pick)][name] = value

    @precondition(lambda self: set(self.world.local) & set(self.world.remote))
    @rule(pick=PICK, name=NAME, local_value=VALUE, remote_value=VALUE)
    def both_edit(self, pick, name, local_value, remote_value):
        """The same field is edited on both sides between two syncs."""
        cid = _pick(set(self.world.local) & set(self.world.remote), pick)
        self.world.local[cid][name] = local_value
        self.world.remote[cid][name] = remote_value

    @rule(fields=FIELDS)
    def remote_create(self, fields):
        """A customer is created in Solar Proof."""
        self.world.remote[self._new_id()] = dict(fields)

    @precondition(lambda self: self.world.remote)
    @rule(pick=PICK)
    def remote_delete(self, pick):
        """A customer is deleted in Solar Proof (the API gives no delete signal)."""
        del self.world.remote[_pick(self.world.remote, pick)]

    # -- syncs ------------------------------------------------------------------------

    @rule()
    def sync(self):
        """A complete sync; checks convergence, no lost edits, conflicts and idempotence."""
        self._sync_and_check(frozenset())
        self._check_idempotent()

    @precondition(lambda self: self.world.remote)
    @rule(pick=PICK)
    def sync_with_shifted_listing(self, pick):
        """A sync whose complete listing missed one existing customer (offset paging shifted it)."""
        self._sync_and_check(frozenset({_pick(self.world.remote, pick)}))

    def _sync_and_check(self, hidden: frozenset[int]) -> None:
        before = copy.deepcopy(self.world)
        report = model_sync(self.world, self.policy, hidden)
        after = self.world
        listed = set(before.remote) - hidden

        # (c) a conflict (or a remote_wins override) exactly where both sides changed a field to
        #     different values; the recorded values are the pre-sync ones.
        for cid, (b, l, r) in report.merged.items():
            for name in NAMES:
                both = not same(l[name], b[name]) and not same(r[name], b[name]) and not same(l[name], r[name])
                key = (cid, name)
                assert (key in report.conflicts) == (both and self.policy == "manual"), (key, b[name], l[name], r[name])
                assert (key in report.overridden) == (both and self.policy == "remote_wins"), key
                if key in report.conflicts:
                    assert report.conflicts[key] == (b[name], l[name], r[name])
                    assert after.local[cid][name] == l[name]  # local keeps its value
                    assert after.base[cid][name] == r[name]  # the base takes the remote side
        assert {cid for cid, _ in report.conflicts} <= set(report.merged)

        # (b) no local edit is lost.
        for cid, local in before.local.items():
            if cid not in before.base:
                continue
            for name in NAMES:
                value = local[name]
                if same(value, before.base[cid][name]):
                    continue  # not an edit
                key = (cid, name)
                if cid in report.deleted:
                    assert after.archive[cid][name] == value  # deleted remotely: kept in the archive
                elif cid not in listed:
                    assert after.local[cid][name] == value  # not merged this time: still in the row
                elif same(after.remote[cid][name], value):
                    pass  # pushed (or both sides made the same edit)
                elif key in report.conflicts:
                    assert self.policy == "manual"
                    assert report.conflicts[key][1] == value and after.local[cid][name] == value
                elif key in report.overridden:
                    assert self.policy == "remote_wins"
                    assert report.overridden[key][0] == value
                elif cid in report.held_during_merge:
                    assert self.policy == "manual"
                    assert after.local[cid][name] == value  # waits in the row until the conflict is settled
                else:
                    raise AssertionError(f"local edit lost: customer {cid} {name}={value!r}, "
                                         f"base {before.base[cid][name]!r}, remote now {after.remote[cid][name]!r}")

        # (a) the sides converge on every customer not left in conflict.
        for cid in sorted(listed & set(after.local)):
            if cid in after.held:
                continue
            for name in NAMES:
                assert same(after.local[cid][name], after.remote[cid][name]), (cid, name)
            assert after.base[cid] == after.remote[cid]
        if self.policy != "manual":
            assert not report.conflicts and not after.held

        # Deletes: only customers gone from Solar Proof, only after two complete listings missed them.
        assert not report.deleted & set(after.remote)
        for cid in report.deleted:
            assert before.missing_since[cid] is not None and cid not in listed

    def _check_idempotent(self) -> None:
        """(d) A second sync with no edits changes no field; a third changes nothing at all."""
        second = copy.deepcopy(self.world)
        report = model_sync(second, self.policy)
        assert not (report.to_local or report.pushed or report.conflicts or report.overridden or report.created)
        # The only thing a second sync may still do is confirm deletes the first one started.
        assert report.deleted <= {cid for cid, since in self.world.missing_since.items() if since is not None}
        for cid in second.local:
            assert second.local[cid] == self.world.local[cid]
            assert second.base[cid] == self.world.base[cid]
        assert second.remote == self.world.remote
        third = copy.deepcopy(second)
        assert not model_sync(third, self.policy).changed_anything()
        assert third.state() == second.state()

    @invariant()
    def bookkeeping_is_consistent(self):
        """Every local row has a base and a delete-tracking entry; held rows exist locally."""
        w = self.world
        assert set(w.local) == set(w.base) == set(w.missing_since)
        assert w.held <= set(w.local)
        assert {cid for cid, _ in w.conflicts} == w.held


class ManualSync(SyncMachine):
    """The default policy: conflicts are left for a person."""

    policy = "manual"

    @precondition(lambda self: self.world.held)
    @rule(pick=PICK, take=st.sampled_from(["local", "remote"]))
    def resolve(self, pick, take):
        """`spmirror resolve ID --take local|remote` settles a row in conflict."""
        w = self.world
        cid = _pick(w.held, pick)
        for key in [k for k in w.conflicts if k[0] == cid]:
            if take == "remote":
                w.local[cid][key[1]] = w.base[cid][key[1]]  # the remote value as last seen
            del w.conflicts[key]
        w.held.discard(cid)


class RemoteWinsSync(SyncMachine):
    """Conflicts are settled by taking Solar Proof's value (the local one goes to history)."""

    policy = "remote_wins"


class LocalWinsSync(SyncMachine):
    """Conflicts are settled by pushing the local value."""

    policy = "local_wins"


assert set(POLICIES) == {ManualSync.policy, RemoteWinsSync.policy, LocalWinsSync.policy}

_MACHINE_SETTINGS = settings(max_examples=80, stateful_step_count=30, **FAST)
TestManualSync = ManualSync.TestCase
TestManualSync.settings = settings(_MACHINE_SETTINGS, max_examples=150)  # conflicts need the most runs
TestRemoteWinsSync = RemoteWinsSync.TestCase
TestRemoteWinsSync.settings = _MACHINE_SETTINGS
TestLocalWinsSync = LocalWinsSync.TestCase
TestLocalWinsSync.settings = _MACHINE_SETTINGS


@settings(max_examples=300, **FAST)
@given(base=FIELDS, local=FIELDS, remote=FIELDS, policy=st.sampled_from(POLICIES))
def test_merge_fields_decides_each_field_once(base, local, remote, policy):
    """Each field is at most one of to_local, to_push or conflict, and a decided field moves the right value."""
    merge = merge_fields(base, local, remote, NAMES, policy)
    for name in NAMES:
        decided = [name in merge.to_local, name in merge.to_push, name in merge.conflicts]
        assert sum(decided) <= 1
        assert (sum(decided) == 0) == same(local[name], remote[name])
        if name in merge.to_local:
            assert merge.to_local[name] == remote[name]
        if name in merge.to_push:
            assert merge.to_push[name] == local[name]
    assert set(merge.overridden) <= set(merge.to_local)


# =====================================================================================
# 2. plan_deletes
# =====================================================================================

IDS = st.integers(min_value=1, max_value=30)


@st.composite
def delete_inputs(draw):
    missing_since = draw(st.dictionaries(IDS, st.none() | st.sampled_from(["run-1", "run-2"]), max_size=20))
    listed = draw(st.sets(IDS, max_size=20))
    size = draw(st.integers(min_value=0, max_value=40))
    share = draw(st.floats(min_value=0.0, max_value=1.0))
    allow = draw(st.booleans())
    return missing_since, listed, size, share, allow


@settings(max_examples=200, **FAST)
@given(delete_inputs())
def test_plan_deletes_never_confirms_a_listed_or_newly_missing_customer(args):
    """Confirmed deletes are known, unlisted, and were already missing before this listing."""
    missing_since, listed, size, share, allow = args
    plan = plan_deletes(missing_since, frozenset(listed), size, share, allow)
    assert not plan.confirmed & listed
    assert all(missing_since[i] is not None for i in plan.confirmed)
    assert plan.confirmed <= set(missing_since)
    # Missing for the first time only makes a candidate; listed again forgets the candidacy.
    assert not plan.new_candidates & listed
    assert all(missing_since[i] is None for i in plan.new_candidates)
    assert plan.new_candidates | plan.confirmed == set(missing_since) - listed
    assert not plan.new_candidates & plan.confirmed
    assert plan.reappeared == {i for i in set(missing_since) & listed if missing_since[i] is not None}


@settings(max_examples=200, **FAST)
@given(delete_inputs())
def test_plan_deletes_refuses_exactly_above_the_guard(args):
    """The run is refused iff more are confirmed than max(1, share x size) and mass deletes are not allowed."""
    missing_since, listed, size, share, allow = args
    plan = plan_deletes(missing_since, frozenset(listed), size, share, allow)
    limit = max(1, int(share * size))
    assert plan.limit == limit >= 1
    assert plan.refused == (len(plan.confirmed) > limit and not allow)


@settings(max_examples=50, **FAST)
@given(delete_inputs())
def test_plan_deletes_a_full_listing_deletes_nothing(args):
    """A listing that contains every known customer confirms nothing and refuses nothing."""
    missing_since, listed, size, share, allow = args
    plan = plan_deletes(missing_since, frozenset(listed | set(missing_since)), size, share, allow)
    assert not plan.confirmed and not plan.new_candidates and not plan.refused


# =====================================================================================
# 3. The wire layer fed mangled payloads
# =====================================================================================


def _fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


READ_RECORD = _fixture("read_list_new.json")[0]
WEBHOOK_A_CREATED = _fixture("webhook_a_created.json")
WEBHOOK_A_STATUS = _fixture("webhook_a_status_change.json")
WEBHOOK_B_CREATED = _fixture("webhook_b_created.json")
PROJECT_CUSTOMER = _fixture("project_customer.json")
CANONICAL = _fixture("canonical.json")

ID_KEYS = frozenset({"customer_id", "pkcustomerid", "customerID"})


def _keys_of(value: Any) -> set[str]:
    keys: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            keys.add(key)
            keys |= _keys_of(item)
    elif isinstance(value, list):
        for item in value:
            keys |= _keys_of(item)
    return keys


# Keys the product reads in any shape, so that an added key can switch shapes or reach deep code.
KNOWN_KEYS = sorted(
    _keys_of([READ_RECORD, WEBHOOK_A_CREATED, WEBHOOK_A_STATUS, WEBHOOK_B_CREATED, PROJECT_CUSTOMER, CANONICAL])
    | {"creation_status", "customer_notes", "note", "datetime", "project_id", "site_address", "system_size",
       "solar_panel_quantity", "inverter_quantity", "inverter_type", "solar_panel_type", "proposal_link",
       "user_id", "best_contact_times", "mornings", "evenings", "contactTime", "siteAddress"}
)
KEY = st.sampled_from(KNOWN_KEYS) | st.text(max_size=4)

SAFE_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=24)
WORDS = st.sampled_from([
    "Residential", "RESIDENTIAL", " residential ", "large_scale", "Large-Scale", "LARGE-SCALE", "Commercial",
    "No Status Set", "no-status", "New Contacts", "Signed", "Mega Status", "GST Registered",
    "Not GST Registered", "registered", "Mornings, Evenings", "any", "midday / afternoon", "2020-05-26",
    "0000-00-00", "2020-05-26T12:00:00Z", "2020-05-26 15:12:40", "26/05/2020", "17.92kW", "6600W", "6.6 kwp",
    '{"streetnum": "1", "street": "X St", "suburb": "Y"}', "{not json", "{}", "[]", "null", "🌞☀️🔋",
    "Zoë Ñúñez", "名前", "\u200b", "\x00", " ", "\t\n", "٣", "١٢٣",
])
NUMBER_TEXT = st.one_of(
    st.integers(min_value=-(10**25), max_value=10**25).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["0", "00", "-1", "1", "2", "3", "4", " 12 ", "1e3", "12.0", "0x1F", "1_000", "+7", ""]),
)
HUGE_TEXT = st.builds(lambda ch, n: ch * n, st.sampled_from(["x", "ü", "🌞", " ", "7"]),
                      st.integers(min_value=256, max_value=20_000))
SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),  # json.loads accepts NaN and Infinity
    SAFE_TEXT,
    WORDS,
    NUMBER_TEXT,
    HUGE_TEXT,
)
JUNK = st.recursive(
    SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEY, inner, max_size=4), max_leaves=10
)
# Junk shaped like what the read shape nests, so the project/notes/owner readers go deep.
PROJECT_JUNK = st.dictionaries(
    st.sampled_from(["project_id", "project_title", "site_address", "system_size", "solar_panel_quantity",
                     "inverter_quantity", "solar_panel_type", "inverter_type", "proposal_link"]),
    JUNK | st.dictionaries(st.sampled_from(["streetnum", "street", "suburb", "state", "postcode", "country"]),
                           JUNK, max_size=6),
    max_size=9,
)
NOTE_JUNK = st.dictionaries(st.sampled_from(["datetime", "note"]), JUNK, max_size=2)
OWNER_JUNK = st.dictionaries(
    st.sampled_from(["user_id", "first_name", "last_name", "phone_number", "email", "work_title", "username"]),
    JUNK, max_size=7,
)
NESTED_JUNK = {
    "projects": st.lists(PROJECT_JUNK | JUNK, max_size=3),
    "customer_notes": st.lists(NOTE_JUNK | JUNK, max_size=3) | JUNK,
    "owner_user_info": OWNER_JUNK | JUNK,
    "best_contact_times": st.dictionaries(st.sampled_from(["mornings", "middays", "afternoons", "evenings"]),
                                          JUNK, max_size=4) | JUNK,
}


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys and indexes) to a member of nested dicts and lists."""
    found: list[tuple] = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found.append(prefix + (key,))
        found.extend(_paths(item, prefix + (key,)))
    return found


def _parent(record: Any, path: tuple) -> Any:
    for step in path[:-1]:
        record = record[step]
    return record


@st.composite
def mangled(draw, template: Any) -> Any:
    """A deep copy of `template` with a few keys dropped, values replaced by junk, and keys added."""
    if draw(st.integers(min_value=0, max_value=19)) == 0:
        return draw(JUNK)  # not even an object
    record = copy.deepcopy(template)
    for _ in range(draw(st.integers(min_value=0, max_value=6))):
        paths = _paths(record)
        op = draw(st.sampled_from(["drop", "set", "set", "add", "nest"]))
        if op in ("drop", "set") and paths:
            path = draw(st.sampled_from(paths))
            parent = _parent(record, path)
            if op == "drop":
                del parent[path[-1]]
            else:
                parent[path[-1]] = draw(JUNK)
        elif op == "nest" and isinstance(record, dict):
            key = draw(st.sampled_from(sorted(NESTED_JUNK)))
            record[key] = draw(NESTED_JUNK[key])
        else:
            dicts = [()] + [p for p in paths if isinstance(_parent(record, p + (None,)), dict)]
            where = draw(st.sampled_from(dicts))
            _parent(record, where + (None,))[draw(KEY)] = draw(JUNK)
    return record


def _json_recursion(text: str) -> bool:
    try:
        json.loads(text)
    except RecursionError:
        return True
    except ValueError:
        pass
    return False


def _valid_id(value: Any) -> bool:
    """Conservatively: an id the docs' shapes send (a positive integer, or its ASCII digits)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return 0 < value < 2**63
    return isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 19 and int(value) > 0


_PROBLEM = re.compile(r"^(?P<prefix>(?:\S+\.)?)field (?P<q>['\"])(?P<name>.+?)(?P=q): ", re.DOTALL)


def _candidates(record: Any) -> list[dict]:
    """The objects a shape reads keys from: the record, and getcustomerofproject's "Customer" wrapper."""
    found = [record] if isinstance(record, dict) else []
    if isinstance(record, dict) and isinstance(record.get("Customer"), dict):
        found.append(record["Customer"])
    return found


def check_wire_error(exc: WireError, records: list[Any]) -> None:
    """A WireError names "<record>", a key of the input, or the id key the input lacks."""
    assert isinstance(exc.field, str) and exc.field, exc
    if exc.field == "<record>":
        return
    candidates = [c for r in records for c in _candidates(r)]
    if any(exc.field in c and (c[exc.field] is exc.value or c[exc.field] == exc.value) for c in candidates):
        return  # it names a value some record holds
    # Otherwise it is the id key some record lacks (in a list, another record may hold it).
    assert exc.field in ID_KEYS and exc.value is None, exc
    assert any(c.get(exc.field) is None for c in candidates), exc


def check_customer(customer, record: Any) -> None:
    """A mapped customer has every canonical field, storable values, and problems that name a field."""
    assert set(ALL_FIELDS) <= set(customer.fields)
    assert customer.fields["pkcustomerid"] == customer.remote_id and 0 < customer.remote_id < 2**63
    for name, value in customer.fields.items():
        assert value is None or type(value) in (str, int), (name, value)
    assert customer.carried <= set(ALL_FIELDS)
    roots = {key for c in _candidates(record) for key in c}
    for problem in customer.problems:
        match = _PROBLEM.match(problem)
        assert match, problem
        assert match["name"], problem
        root = re.split(r"[.\[]", match["prefix"] or match["name"], maxsplit=1)[0]
        assert root in roots, (root, problem)


WIRE_SETTINGS = settings(max_examples=200, **FAST)


@WIRE_SETTINGS
@given(mangled(READ_RECORD))
def test_mangled_read_shape_maps_or_raises_wire_error(record):
    """customer_from_read on a mangled read-shape record maps it, or raises WireError naming the id key."""
    try:
        customer = customer_from_read(record)
    except WireError as exc:
        check_wire_error(exc, [record])
        assert exc.field in ("<record>", "customer_id")
        assert not (isinstance(record, dict) and _valid_id(record.get("customer_id"))), exc
    else:
        check_customer(customer, record)
        assert customer.shape == "read"


@WIRE_SETTINGS
@given(mangled(READ_RECORD) | mangled(CANONICAL) | mangled(WEBHOOK_A_CREATED) | mangled(WEBHOOK_B_CREATED)
       | mangled(PROJECT_CUSTOMER))
def test_mangled_records_through_parse_customer(record):
    """parse_customer on any mangled documented shape maps it or raises a WireError naming a field."""
    try:
        customer = parse_customer(record)
    except WireError as exc:
        check_wire_error(exc, [record])
    else:
        check_customer(customer, record)


@WIRE_SETTINGS
@given(mangled(PROJECT_CUSTOMER) | mangled(PROJECT_CUSTOMER["Customer"]))
def test_mangled_project_customer(payload):
    """customer_from_project on a mangled getcustomerofproject payload maps it or raises WireError."""
    try:
        customer = customer_from_project(payload)
    except WireError as exc:
        check_wire_error(exc, [payload])
        assert exc.field in ("<record>", "customerID")
    else:
        check_customer(customer, payload)
        assert customer.shape == "project"
    inner = payload.get("Customer", payload) if isinstance(payload, dict) else None
    if isinstance(inner, dict) and _valid_id(inner.get("customerID")):
        customer_from_project(payload)  # a valid id is never rejected


WEBHOOK_ITEM = mangled(WEBHOOK_A_CREATED) | mangled(WEBHOOK_A_STATUS) | mangled(WEBHOOK_B_CREATED)


@WIRE_SETTINGS
@given(WEBHOOK_ITEM | st.lists(WEBHOOK_ITEM, max_size=3))
def test_mangled_webhook_bodies(body):
    """customers_from_webhook maps a mangled body (object or array) or raises WireError naming a field."""
    items = body if isinstance(body, list) else [body]
    try:
        customers = customers_from_webhook(body)
    except WireError as exc:
        check_wire_error(exc, items)
    else:
        assert len(customers) == len(items)
        for customer, item in zip(customers, items):
            check_customer(customer, item)


def test_documented_shapes_parse_cleanly():
    """Every documented fixture maps, and its only tolerated problem is the docs' placeholder '…'."""
    for record in (READ_RECORD, CANONICAL, WEBHOOK_A_CREATED, WEBHOOK_A_STATUS, WEBHOOK_B_CREATED, PROJECT_CUSTOMER):
        customer = parse_customer(record)
        check_customer(customer, record)
        assert all("…" in p for p in customer.problems), customer.problems


# -- known bugs, pinned ----------------------------------------------------------------

# str.isdigit() is true for digits int() cannot read (superscripts, circled digits) and for digit
# strings longer than Python's int-parsing limit.
DIGITLIKE = st.one_of(
    st.sampled_from(["²", "³", "¹", "①", "⑨", "𝟐" + "²", "₂", "⁴"]),
    st.integers(min_value=4301, max_value=6000).map(lambda n: "1" * n),
)


@settings(max_examples=20, phases=[Phase.explicit, Phase.generate], **FAST)
@example(key="customer_type", word="²")
@given(key=st.sampled_from(["customer_type", "customer_status"]), word=DIGITLIKE)
def test_bug_digit_like_type_or_status_word_is_a_wire_problem(key, word):
    """A type or status word that only looks numeric becomes a noted problem, never an exception."""
    record = dict(READ_RECORD, **{key: word})
    customer = parse_customer(record)  # raises ValueError today
    check_customer(customer, record)
    assert any(key in p for p in customer.problems)


@settings(max_examples=20, phases=[Phase.explicit, Phase.generate], **FAST)
@example(key="customer_type", word="²")
@given(key=st.sampled_from(["customer_type", "customer_status", "new_status"]), word=DIGITLIKE)
def test_bug_digit_like_words_in_webhook_a(key, word):
    """A version-A webhook with a digit-like type or status word maps with a problem, never an exception."""
    template = WEBHOOK_A_STATUS if key == "new_status" else WEBHOOK_A_CREATED
    record = dict(template, **{key: word})
    customers = customers_from_webhook(record)  # raises ValueError today
    check_customer(customers[0], record)


NESTED_JSON_TEXT = st.builds(lambda opener, n: '{"a":' + opener * n, st.sampled_from(["[", '{"b":']),
                             st.integers(min_value=5_000, max_value=50_000))


@settings(max_examples=10, phases=[Phase.explicit, Phase.generate], **FAST)
@example(text='{"a":' + "[" * 100_000)
@given(text=NESTED_JSON_TEXT)
def test_bug_deeply_nested_site_address_text(text):
    """A project's site_address holding deeply nested JSON text is a tolerated problem, not a crash."""
    record = copy.deepcopy(READ_RECORD)
    record["projects"][0]["site_address"] = text
    check_customer(parse_customer(record), record)


# -- write_body, problems_of -----------------------------------------------------------

WRITE_VALUE = st.one_of(
    JUNK, st.sampled_from([None, "", 0, 1, 2, 3, 4, -1, True, False, "1", "Residential", 1.0]), SAFE_TEXT
)


@settings(max_examples=250, **FAST)
@given(st.dictionaries(st.sampled_from(NAMES) | st.sampled_from(ALL_FIELDS) | KEY, WRITE_VALUE, max_size=9))
def test_write_body_maps_or_names_the_column(fields):
    """write_body maps writable columns to write keys or raises a WireError naming one of the columns."""
    try:
        body = write_body(fields)
    except WireError as exc:
        assert exc.field in fields
        assert exc.value is fields[exc.field] or exc.value == fields[exc.field]
    else:
        assert set(fields) <= set(WRITABLE_FIELDS)
        assert set(body) <= set(WRITABLE_FIELDS.values())
        for column, value in fields.items():
            key = WRITABLE_FIELDS[column]
            if column == "fkcustomertypeid":
                assert (key in body) == (value is not None)
                if value is not None:
                    assert body[key] in ("RESIDENTIAL", "COMMERCIAL", "LARGE-SCALE")
            elif column == "customergstregistered":
                assert (key in body) == (value is not None)
                if value is not None:
                    assert body[key] in (0, 1) and type(body[key]) is int
            else:
                assert body[key] == ("" if value is None else value) and isinstance(body[key], str)


VALID_WRITE_VALUE = {
    "fkcustomertypeid": st.sampled_from([None, 1, 2, 3]),
    "customergstregistered": st.sampled_from([None, 0, 1]),
}


@settings(max_examples=200, **FAST)
@given(st.dictionaries(st.sampled_from(NAMES), st.just(None), min_size=1).flatmap(
    lambda names: st.fixed_dictionaries(
        {n: VALID_WRITE_VALUE.get(n, st.none() | SAFE_TEXT) for n in names})))
def test_write_body_sends_every_valid_value(fields):
    """Writable fields with valid values (text, NULL, type 1..3, GST 0/1) always make a write body."""
    assert set(write_body(fields)) == {WRITABLE_FIELDS[n] for n, v in fields.items()
                                       if v is not None or n not in VALID_WRITE_VALUE}


@settings(max_examples=200, phases=[Phase.explicit, Phase.generate], **FAST)
@example(fields={"customergstregistered": ""})
@given(fields=st.dictionaries(st.sampled_from(NAMES), WRITE_VALUE, max_size=9))
def test_bug_validation_and_write_body_agree(fields):
    """Whatever problems_of lets through for an update, write_body can send."""
    assume(problems_of(fields, creating=False) == [])
    write_body(fields)


ANY_VALUE = st.one_of(
    JUNK, st.binary(max_size=8), st.decimals(allow_nan=True), st.fractions(), st.dates(), st.complex_numbers(),
    st.tuples(SCALAR, SCALAR), st.frozensets(st.integers(), max_size=3), st.sampled_from([object(), Ellipsis, int]),
)


@settings(max_examples=250, **FAST)
@given(fields=st.dictionaries(st.sampled_from(ALL_FIELDS) | KEY, ANY_VALUE, max_size=10), creating=st.booleans())
def test_problems_of_never_raises_and_names_columns(fields, creating):
    """problems_of returns a list of strings, each starting with the column it is about."""
    problems = problems_of(fields, creating=creating)
    assert isinstance(problems, list)
    for problem in problems:
        assert isinstance(problem, str)
        column = problem.split(" ", 1)[0]
        assert column in WRITABLE_FIELDS and (column in fields or column in REQUIRED_FOR_CREATE), problem
    if creating:
        for name in REQUIRED_FOR_CREATE:
            if fields.get(name) in (None, ""):
                assert any(p.startswith(f"{name} is required") for p in problems)


# -- split_json_array ------------------------------------------------------------------

JSONISH_TEXT = st.text(st.sampled_from(list('[]{},:" \t\n\r0123456789-+.eEtruefalsnNIiyb\\/u') + ["\u00e9", "🌞"]),
                       max_size=40)
JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=15,
)


def _nan_equal(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_nan_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_nan_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@settings(max_examples=400, **FAST)
@given(st.text(max_size=40) | JSONISH_TEXT | JSON_VALUE.map(json.dumps).flatmap(
    lambda text: st.integers(min_value=0, max_value=len(text)).map(lambda cut: text[:cut])))
def test_split_json_array_agrees_with_json_loads(body):
    """split_json_array raises only ValueError, exactly when json.loads does, and otherwise agrees with it."""
    try:
        expected = json.loads(body)
    except ValueError:
        with pytest.raises(ValueError):
            split_json_array(body)
        return
    records = split_json_array(body)
    if not isinstance(expected, list):
        assert records is None
    else:
        assert records is not None and _nan_equal([r.value for r in records], expected)
        for record in records:
            assert _nan_equal(json.loads(record.text), record.value)


@settings(max_examples=200, **FAST)
@given(values=st.lists(JSON_VALUE, max_size=6), indent=st.none() | st.integers(min_value=0, max_value=3),
       ensure_ascii=st.booleans(), padding=st.sampled_from(["", " ", "\n", " \t\r\n"]))
def test_split_json_array_round_trips_dumped_lists(values, indent, ensure_ascii, padding):
    """On json.dumps(list) the records' values are the list and each text json.loads back to its value."""
    body = padding + json.dumps(values, indent=indent, ensure_ascii=ensure_ascii) + padding
    records = split_json_array(body)
    assert records is not None
    assert [r.value for r in records] == values
    for record in records:
        assert json.loads(record.text) == record.value
        assert record.text == record.text.strip(" \t\r\n")  # exactly the element, no separators
        assert record.text in body


@settings(max_examples=10, phases=[Phase.explicit, Phase.generate], **FAST)
@example(body="[" * 100_000)
@given(body=st.builds(lambda nest, n, closed: nest[0] * n + (nest[1] * n if closed else ""),
                      st.sampled_from([("[", "]"), ('[{"a":', "}]")]), st.integers(min_value=5_000, max_value=50_000),
                      st.booleans()))
def test_bug_split_json_array_deep_nesting_raises_value_error(body):
    """A deeply nested page body raises ValueError (unreadable JSON), never RecursionError, and never passes
    for a page."""
    with pytest.raises(ValueError):
        split_json_array(body)
