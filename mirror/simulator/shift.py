"""A one-shot "records shift between pages mid-walk" event (digest §4.1: offset paging).

Contract: `Shift(after_page, delete_served, create)` is armed by `Account.schedule_shift`. When
page `after_page` of `getallcustomers` has just been rendered for a client, `run()` deletes
`delete_served` customers chosen (with the account's seeded rng) among those on pages
1..after_page, and creates `create` new customers, exactly as a colleague working in the web app
would at that moment. It runs once. `report()` says what it did and what a client that walks
on from page after_page+1 will observe, assuming nothing else changes during its walk:

* `missed`: existing customers that moved back onto already-served pages (deletes shift later
  records back; in "newest" order the new customers' arrival is not counted as a miss);
* `duplicated`: customers already served that reappear on later pages (in "newest" order the
  new customers land on page 1 and push the others forward).

It works on the account's internals and is only called with the account's lock held.
"""

from __future__ import annotations

PAGE_SIZE = 50  # the documented size; the account's Quirks.page_size is the one served


class Shift:
    """See the module docstring."""

    def __init__(self, after_page: int, delete_served: int = 0, create: int = 0) -> None:
        if after_page < 1 or delete_served < 0 or create < 0:
            raise ValueError("after_page must be >= 1; delete_served and create must be >= 0")
        self.after_page = after_page
        self.delete_served = delete_served
        self.create = create
        self.done = False
        self._result: dict = {}

    def due(self, page: int) -> bool:
        return not self.done and page == self.after_page

    def run(self, account, page: int) -> None:
        """Apply the shift to `account` (lock held by the caller)."""
        self.done = True
        cut = page * account.quirks.page_size
        before = account._listing()
        served = before[:cut]
        victims = account.people.rng.sample(served, min(self.delete_served, len(served)))
        for customer_id in victims:
            account._delete(customer_id)
        created = [account._create({}) for _ in range(self.create)]
        after = account._listing()
        seen, new = set(served), set(created)
        self._result = {
            "order": account.order,
            "deleted": sorted(victims),
            "created": created,
            "missed": [i for i in after[:cut] if i not in seen and i not in new],
            "duplicated": [i for i in after[cut:] if i in seen],
        }

    def report(self) -> dict:
        """{after_page, delete_served, create, done, order, deleted, created, missed, duplicated}."""
        base = {"after_page": self.after_page, "delete_served": self.delete_served,
                "create": self.create, "done": self.done}
        return {**base, **{k: list(v) if isinstance(v, list) else v for k, v in self._result.items()}}
