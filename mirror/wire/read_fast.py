"""The read shape's common case, normalised in one pass: a first import's main CPU cost.

`clean_read(record)` maps a record in which every value has the type the docs give it (texts as
strings or null, ids and counts as digit strings or integers, words the mirror knows, dates as
YYYY-MM-DD) to the very Customer that read_shape.customer_from_read would make, in about half
the time: no FieldReader, no problem list, each field read once. Anything else (a number where
text belongs, an unknown word, a project without a usable id, an address sent as JSON text)
returns None, and the caller takes the general path, which notes what was odd. So this module
never decides anything the general path would decide differently; tests/test_wire.py holds the
two to the same answers on generated records.

Words (status, type, GST) and system sizes repeat across an account, so each distinct value is
converted once by the general path's own functions and remembered, with whether that raised a
problem (then the record goes the general way, and the problem is noted there).
"""

from __future__ import annotations

from typing import Any

from mirror.customer import Customer, Note, Owner, Project
from mirror.vocabulary import STATUS_IDS, STATUS_LABELS, TYPE_IDS, TYPE_LABELS
from mirror.wire.fields import ALL_FIELDS, FieldReader, address_line, system_size_kw

# (canonical column, read-shape key) of the texts; read_shape's general path reads the same.
READ_TEXT_KEYS = (
    ("customerfirstname", "customer_first_name"),
    ("customersurname", "customer_last_name"),
    ("customeremail", "customer_email"),
    ("customerphone1", "customer_phone_1"),
    ("customerphone2", "customer_phone_2"),
    ("customercompanyname", "company_name"),
    ("customercompanyphone", "company_phone"),
)
_SITE_KEYS = ("streetnum", "street", "suburb", "state", "postcode", "country")
_PROJECT_KEYS = ("project_title", "system_size", "solar_panel_type", "inverter_type", "proposal_link")
_OWNER_KEYS = ("first_name", "last_name", "phone_number", "email", "work_title", "username")
_EMPTY_FIELDS = dict.fromkeys(ALL_FIELDS)
_UNCLEAN = object()

# value -> converted value, or _UNCLEAN when the general path notes a problem with it.
_gst: dict[Any, Any] = {}
_types: dict[Any, Any] = {}
_statuses: dict[Any, Any] = {}
_sizes: dict[str, float | None] = {}


def _remembered(cache: dict, value: Any, convert) -> Any:
    # Keyed with the type too: True == 1 == 1.0 to a dict, but not to the general path.
    key = (value.__class__, value)
    try:
        return cache[key]
    except KeyError:
        pass
    except TypeError:
        return _UNCLEAN  # unhashable: a list or an object where a word belongs
    reader = FieldReader({"v": value})
    result = convert(reader)
    if reader.problems:
        result = _UNCLEAN
    if len(cache) > 10_000:  # an account of ever-new words: stop remembering, stay correct
        cache.clear()
    cache[key] = result
    return result


def _gst_of(reader: FieldReader) -> Any:
    return reader.gst("v")


def _type_of(reader: FieldReader) -> Any:
    return reader.word("v", TYPE_IDS, TYPE_LABELS, "customer type")


def _status_of(reader: FieldReader) -> Any:
    return reader.word("v", STATUS_IDS, STATUS_LABELS, "customer status")


def _id(value: Any, low: int = 1) -> int | None:
    """An id or count sent as digits or an integer; None if it is anything else."""
    if value.__class__ is str:
        if value.isdigit() and value.isascii() and len(value) < 19:
            number = int(value)
            return number if number >= low else None
        return None
    if value.__class__ is int and low <= value < 2**63:
        return value
    return None


def _date(value: Any) -> Any:
    if value is None or value == "":
        return None
    if (value.__class__ is str and len(value) == 10 and value[4] == "-" and value[7] == "-" and value.isascii()
            and value[:4] != "0000" and value[:4].isdigit() and value[5:7].isdigit() and value[8:].isdigit()):
        return value
    return _UNCLEAN


def _count(value: Any) -> Any:
    if value is None or value == "":
        return None
    if value.__class__ is str and value.isdigit() and value.isascii() and len(value) <= 9:
        return int(value)
    if value.__class__ is int and 0 <= value < 10**9:
        return value
    return _UNCLEAN


def clean_read(record: dict, carried: frozenset[str], carried_no_project: frozenset[str]) -> Customer | None:
    """The Customer customer_from_read makes of `record`, or None when it is not clean.
    `carried` and `carried_no_project` are the read shape's (read_shape.READ_CARRIES...)."""
    remote_id = _id(record.get("customer_id"))
    if remote_id is None:
        return None
    get = record.get
    fields = _EMPTY_FIELDS.copy()
    fields["pkcustomerid"] = remote_id
    for name, key in READ_TEXT_KEYS:
        value = get(key)
        if value.__class__ is str:
            fields[name] = value or None
        elif value is not None:
            return None
    gst = _remembered(_gst, get("gst_status"), _gst_of)
    kind = _remembered(_types, get("customer_type"), _type_of)
    status = _remembered(_statuses, get("customer_status" if "customer_status" in record else "creation_status"),
                         _status_of)
    created = _date(get("creation_date"))
    if gst is _UNCLEAN or kind is _UNCLEAN or status is _UNCLEAN or created is _UNCLEAN:
        return None
    fields["customergstregistered"] = gst
    fields["fkcustomertypeid"], fields["customer_type_text"] = kind
    fields["fkcustomerstatusid"], fields["customer_status_text"] = status
    fields["created_at"] = created
    projects = _projects(get("projects"))
    notes = _notes(get("customer_notes"))
    owner = _owner(get("owner_user_info"))
    if projects is None or notes is None or owner is _UNCLEAN:
        return None
    if projects:
        fields["customer_site_address"] = min(projects, key=_project_id).site_address
    return Customer(remote_id, fields, carried if projects else carried_no_project, "read", record,
                    notes, projects, owner, ())


def _project_id(project: Project) -> int:
    return project.project_id


def _projects(value: Any) -> tuple[Project, ...] | None:
    if value is None or value == "":
        return ()
    if value.__class__ is not list:
        return None
    projects = []
    for item in value:
        if item.__class__ is not dict:
            return None
        project_id = _id(item.get("project_id"))
        if project_id is None:
            return None
        get = item.get
        texts = _texts(item, _PROJECT_KEYS)
        if texts is None:
            return None
        title, size_text, panel_type, inverter_type, link = texts
        panels, inverters = _count(get("solar_panel_quantity")), _count(get("inverter_quantity"))
        if panels is _UNCLEAN or inverters is _UNCLEAN:
            return None
        site = get("site_address")
        parts = dict.fromkeys(_SITE_KEYS)
        if site.__class__ is dict:
            for key in _SITE_KEYS:
                part = site.get(key)
                if part.__class__ is str:
                    parts[key] = part or None
                elif part is not None:
                    return None
            line = address_line(parts)
        elif site.__class__ is str and not site.lstrip().startswith("{"):
            line = site.strip() or None
        elif site is None:
            line = None
        else:
            return None
        if size_text is None:
            size_kw = None
        else:
            size_kw = _sizes.get(size_text, _UNCLEAN)
            if size_kw is _UNCLEAN:
                size_kw = _sizes[size_text] = system_size_kw(size_text)
                if len(_sizes) > 10_000:
                    _sizes.clear()
        projects.append(Project(project_id, title, line, parts["streetnum"], parts["street"], parts["suburb"],
                                parts["state"], parts["postcode"], parts["country"], size_kw, size_text, panels,
                                panel_type, inverter_type, inverters, link))
    return tuple(projects)


def _notes(value: Any) -> tuple[Note, ...] | None:
    if value is None or value == "" or value == []:
        return ()
    if value.__class__ is str:
        return (Note(None, value),)
    if value.__class__ is not list:
        return None
    notes = []
    for item in value:
        if item.__class__ is not dict or item.get("note").__class__ is not str:
            return None
        when = item.get("datetime")
        notes.append(Note(when if isinstance(when, str) and when else None, item["note"]))
    return tuple(notes)


def _owner(value: Any) -> Owner | None | object:
    if value is None or value == "" or value == [] or value == {}:
        return None
    if value.__class__ is not dict:
        return _UNCLEAN
    user_id = value.get("user_id")
    if user_id is None or user_id == "":
        number = None
    else:
        number = _id(user_id)
        if number is None:
            return _UNCLEAN
    texts = _texts(value, _OWNER_KEYS)
    return _UNCLEAN if texts is None else Owner(number, *texts)


def _texts(record: dict, keys: tuple[str, ...]) -> list[str | None] | None:
    """Each key's text ("" as None), or None if any value is neither text nor null."""
    texts = []
    for key in keys:
        text = record.get(key)
        if text.__class__ is str:
            texts.append(text or None)
        elif text is None:
            texts.append(None)
        else:
            return None
    return texts
