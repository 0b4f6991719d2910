"""The keys the mirror reads in each answer the probe looks at: what "a field the mirror does
not know" and "an expected field missing" are measured against.

They are the keys mirror/wire/read_shape.py and mirror/wire/other_shapes.py read, as the docs
show them (solarproof-api.md §6.2 and §6.3); tests/test_check.py checks that every key of the
simulator's records is here, so the simulator and this list cannot drift apart unseen.
"""

from __future__ import annotations

# The read shape (getallcustomers, getcustomerByemail, getcustomer). The old docs' field list
# names the status `creation_status`: either key is the status.
READ_KEYS = frozenset({
    "customer_id", "gst_status", "customer_first_name", "customer_last_name", "customer_phone_1",
    "customer_phone_2", "customer_email", "customer_type", "company_name", "company_phone",
    "owner_user_info", "creation_date", "customer_notes", "customer_status", "creation_status", "projects",
})
STATUS_KEYS = ("customer_status", "creation_status")
EXPECTED_READ_KEYS = READ_KEYS - set(STATUS_KEYS)
PROJECT_KEYS = frozenset({
    "project_id", "project_title", "site_address", "solar_panel_quantity", "solar_panel_type", "inverter_type",
    "inverter_quantity", "system_size", "proposal_link",
})
SITE_KEYS = frozenset({"streetnum", "street", "suburb", "state", "postcode", "country"})
OWNER_KEYS = frozenset({"user_id", "first_name", "last_name", "phone_number", "email", "work_title", "username"})
NOTE_KEYS = frozenset({"datetime", "note"})

# getcustomerofproject: {"Message", "Customer": {...}}.
PROJECT_CUSTOMER_WRAPPER = frozenset({"Message", "Customer"})
PROJECT_CUSTOMER_KEYS = frozenset({
    "customerID", "uid", "gstRegistered", "firstName", "surname", "phone1", "phone2", "email", "companyName",
    "companyPhone", "customerabn", "siteAddress", "note", "contactTime",
})
