"""Applying a run of staged identify operations with a few set-based statements (issue 15, item 2).

`identify_many` gives exactly the outcome of `profiles.services.identify` applied to each operation
in order, with one SELECT for every person the run can touch, one UPDATE for the changed ones, one
INSERT for the new ones and the change feed notes written with the batch's:

1. load (and lock, in id order) every person named by an id, email or cio_id reference, a `set_id`
   or an `email` in the run — everyone a per-row `find_person`, the id-less-person-with-this-email
   rule, the `set_id` check and `_email_taken` could ask about;
2. replay the operations in order on those in-memory people with the per-row code itself
   (`services._apply_columns` with the email-taken question answered from the loaded people,
   `services.merge_attributes`), keeping the id/email/cio_id lookups current as ids and emails
   move, so a later operation on the same person sees the earlier one's result;
3. write: one `UPDATE … FROM jsonb_to_recordset` for the existing people a per-row identify would
   have saved (the columns identify writes), one multi-row INSERT for the people it would have
   created (their final state), then one attributes note per person in the order the per-row path
   would have made its first note for them (the recorder folds a person's notes into one row at
   the first note's place, so the feed rows are the same).

Only "plain" identifies take this path (`batchable`): a person referenced by id, email or cio_id,
no anonymous id to link (that may merge people) and no relationships. The processor applies other
operations one by one between the runs. Any error (a person created concurrently through the App
API, a row two people swap an email in, a value the database rejects) rolls the run back to its
savepoint and the processor applies the run one operation at a time, which keeps the per-row
dead-letter behaviour.
"""

import json
from datetime import UTC, datetime

from django.db import connection, transaction
from django.db.models import Q

from profiles import services
from profiles.changefeed import recording as feed
from profiles.models import Profile

REFERENCE_KEYS = ("id", "email", "cio_id")
_COLUMN_OF = {"id": "external_id", "email": "email", "cio_id": "cio_id"}
_WRITTEN = ("external_id", "email", "phone", "unsubscribed", "attributes", "attribute_timestamps")


def batchable(op: dict) -> bool:
    """Whether the set-based path applies `op` (else the per-row handler does)."""
    if op.get("op") != "identify" or op.get("anonymous_id") or op.get("relationships"):
        return False
    ref = op.get("person")
    return isinstance(ref, dict) and len(ref) == 1 and next(iter(ref)) in REFERENCE_KEYS and all(
        isinstance(value, str) for value in ref.values())


class _Run:
    def __init__(self, workspace, operations: list[dict]):
        self.workspace = workspace
        wanted = {"id": set(), "email": set(), "cio_id": set()}
        for op in operations:
            key, value = next(iter(op["person"].items()))
            wanted[key].add(value)
            if op.get("set_id"):
                wanted["id"].add(op["set_id"])
            if op.get("email"):
                wanted["email"].add(op["email"])
        query = Q(pk__in=[])
        for key, values in wanted.items():
            if values:
                query |= Q(**{f"{_COLUMN_OF[key]}__in": sorted(values)})
        people = list(Profile.objects.for_workspace(workspace).filter(query).select_for_update().order_by("pk"))
        self.index = {key: {} for key in REFERENCE_KEYS}
        self.before: dict[int, dict | None] = {}  # id(person) -> snapshot before the run (None: created)
        self.first_note: dict[int, int] = {}  # id(person) -> the operation of its first note
        self.people: dict[int, Profile] = {}
        self.created: list[Profile] = []
        for person in people:
            self._index(person)
            self.people[id(person)] = person
            self.before[id(person)] = feed.snapshot(person)

    def _index(self, person: Profile) -> None:
        for key in REFERENCE_KEYS:
            value = getattr(person, _COLUMN_OF[key])
            if value is not None:
                self.index[key][value] = person

    def _moved(self, person: Profile, key: str, old) -> None:
        """`person`'s id or email changed from `old`: keep the lookup current."""
        if old is not None and self.index[key].get(old) is person:
            del self.index[key][old]
        new = getattr(person, _COLUMN_OF[key])
        if new is not None:
            self.index[key][new] = person

    def _find(self, ref: dict) -> Profile | None:
        key, value = next(iter(ref.items()))
        return self.index[key].get(value)

    def _email_taken(self, email: str, person: Profile) -> bool:
        other = self.index["email"].get(email)
        return other is not None and other is not person

    def _noted(self, person: Profile, position: int) -> None:
        self.first_note.setdefault(id(person), position)

    def _create(self, ref: dict, position: int) -> Profile:
        key, value = next(iter(ref.items()))
        person = Profile(workspace=self.workspace, **{_COLUMN_OF[key]: value})
        self.created.append(person)
        self.people[id(person)] = person
        self.before[id(person)] = None
        self._index(person)
        self._noted(person, position)  # get_or_create_person notes a created person at once
        return person

    def identify(self, position: int, op: dict) -> None:
        """`services.identify` on the in-memory people (kept line by line in step with it)."""
        ts, ref = op["ts"], op["person"]
        person = self._find(ref)
        fields = set()
        if person is None:
            if op.get("update_only") or "cio_id" in ref:
                return
            if "id" in ref and op.get("email"):
                candidate = self.index["email"].get(op["email"])
                if candidate is not None and candidate.external_id is None:
                    person = candidate
                    person.external_id = ref["id"]
                    self._moved(person, "id", None)
                    fields.add("external_id")
            if person is None:
                person = self._create(ref, position)
        if op.get("set_id") and not person.external_id and op["set_id"] not in self.index["id"]:
            old = person.external_id
            person.external_id = op["set_id"]
            self._moved(person, "id", old)
            fields.add("external_id")
        email = person.email
        fields |= services._apply_columns(self.workspace, person, op, ts, email_taken=self._email_taken)
        if person.email != email:
            self._moved(person, "email", email)
        if op.get("attributes"):
            services.merge_attributes(person.attributes, person.attribute_timestamps, op["attributes"], ts)
            fields |= {"attributes", "attribute_timestamps"}
        if fields:
            self._noted(person, position)

    def write(self) -> int:
        created = {id(person) for person in self.created}
        changed = [self.people[key] for key in self.first_note if key not in created]
        now = datetime.now(UTC)
        if changed:
            rows = [{"id": person.pk, **{name: getattr(person, name) for name in _WRITTEN}} for person in changed]
            table = Profile._meta.db_table
            assignments = ", ".join(f"{name} = v.{name}" for name in _WRITTEN)
            with connection.cursor() as cursor:
                cursor.execute(
                    f"""UPDATE {table} AS p SET {assignments}, updated_at = %s
                        FROM jsonb_to_recordset(%s::jsonb) AS v(id bigint, external_id text, email text, phone text,
                             unsubscribed boolean, attributes jsonb, attribute_timestamps jsonb)
                        WHERE p.workspace_id = %s AND p.id = v.id""",
                    [now, json.dumps(rows), self.workspace.pk])
        if self.created:
            Profile.objects.for_workspace(self.workspace).bulk_create(self.created, batch_size=2000)
        for key in sorted(self.first_note, key=self.first_note.get):
            person = self.people[key]
            if key not in created:
                person.updated_at = now
            feed.person_changed(person, self.before[key])
        return len(self.first_note)


@transaction.atomic
def identify_many(*, workspace, operations: list[dict]) -> int:
    """Apply `operations` (all `batchable`) as `services.identify` one by one in order would; returns
    how many people were created or changed."""
    if not operations:
        return 0
    run = _Run(workspace, operations)
    for position, op in enumerate(operations):
        run.identify(position, op)
    return run.write()
