"""Reads for people, activities, objects and relationships.

Every function takes the workspace and filters by it on top of the scoped managers. Lists use
keyset paging: they take the last row's key (`after`) and return up to `limit + 1` rows, so the
caller knows whether a next page exists without counting.
"""

from django.db.models import Count, Prefetch, Q

from profiles.models import CustomObject, Device, Event, InboundOperation, ObjectType, Profile, Relationship

PERSON_COLUMNS = {"id": "external_id", "email": "email", "cio_id": "cio_id"}


def people(workspace):
    return Profile.objects.filter(workspace=workspace)


def find_person(workspace, id_type: str, identifier: str, *, with_devices: bool = False) -> Profile | None:
    if id_type == "email":
        identifier = identifier.strip().lower()
    queryset = people(workspace).filter(**{PERSON_COLUMNS[id_type]: identifier})
    if with_devices:
        devices = Device.objects.filter(workspace=workspace).order_by("pk")
        queryset = queryset.prefetch_related(Prefetch("devices", queryset=devices))
    return queryset.first()


def people_with_email(workspace, email: str) -> list[Profile]:
    return list(people(workspace).filter(email=email.strip().lower()).order_by("pk"))


# Above every character, so `term + LAST_CHAR` bounds every string that starts with `term`.
LAST_CHAR = "\U0010ffff"


def starts_with(field: str, term: str) -> Q:
    """`field` equals or starts with `term`, in a form the (workspace, field, ...) btree can serve.

    PostgreSQL uses a btree for `LIKE 'x%'` only under the plain "C" collation (not C.UTF-8), and
    never for Django's case-insensitive `=`/`^` lookups (`UPPER(...)`). The range can use it; it
    bounds the matches exactly under a code-point collation (C or C.UTF-8, as Ulak's databases
    use), and `startswith` keeps out anything else.
    """
    return Q(**{f"{field}__gte": term, f"{field}__lt": term + LAST_CHAR, f"{field}__startswith": term})


def people_by_prefix(workspace, term: str, *, limit: int) -> tuple[list[Profile], bool]:
    """The console's person pickers: people whose id, email or cio_id starts with `term` (emails
    and cio_ids are stored lowercased), at most `limit`, and whether there are more."""
    condition = starts_with("external_id", term) | starts_with("email", term.lower()) | \
        starts_with("cio_id", term.lower())
    rows = search_people(workspace, condition, after=None, limit=limit)
    return rows[:limit], len(rows) > limit


def search_people(workspace, condition: Q, *, after: int | None, limit: int) -> list[Profile]:
    queryset = people(workspace).filter(condition)
    if after is not None:
        queryset = queryset.filter(pk__gt=after)
    return list(queryset.order_by("pk").only("pk", "external_id", "email", "cio_id")[: limit + 1])


def activities(workspace, person: Profile, *, kind: str | None, name: str | None, before, limit: int) -> list[Event]:
    """Newest first along the (workspace, profile, -timestamp) index; `before` is (timestamp, pk)."""
    queryset = Event.objects.filter(workspace=workspace, profile=person)
    if kind:
        queryset = queryset.filter(type=kind)
    if name:
        queryset = queryset.filter(name=name)
    if before is not None:
        timestamp, pk = before
        queryset = queryset.filter(Q(timestamp__lt=timestamp) | Q(timestamp=timestamp, pk__lt=pk))
    return list(queryset.order_by("-timestamp", "-pk")[: limit + 1])


# --- objects --------------------------------------------------------------------------------------

def object_types(workspace):
    return ObjectType.objects.filter(workspace=workspace).order_by("type_id")


def find_object_type(workspace, type_id: str) -> ObjectType | None:
    return object_types(workspace).filter(type_id=type_id).first()


def object_types_by_id(workspace, type_ids) -> dict[str, ObjectType]:
    return {t.type_id: t for t in object_types(workspace).filter(type_id__in=set(type_ids))}


def list_objects(workspace, *, type_id: str | None, after: int | None, limit: int) -> list[CustomObject]:
    queryset = CustomObject.objects.filter(workspace=workspace).select_related("object_type")
    if type_id is not None:
        queryset = queryset.filter(object_type__type_id=type_id)
    if after is not None:
        queryset = queryset.filter(pk__gt=after)
    return list(queryset.order_by("pk")[: limit + 1])


def find_object(workspace, type_id: str, object_id: str) -> CustomObject | None:
    return (
        CustomObject.objects.filter(workspace=workspace, object_type__type_id=type_id, object_id=object_id)
        .select_related("object_type")
        .first()
    )


def object_relationships(workspace, obj: CustomObject, *, after: int | None, limit: int) -> list[Relationship]:
    queryset = Relationship.objects.filter(workspace=workspace, object=obj).select_related("profile")
    if after is not None:
        queryset = queryset.filter(pk__gt=after)
    return list(queryset.order_by("pk")[: limit + 1])


def person_relationships(workspace, person: Profile, *, after: int | None, limit: int) -> list[Relationship]:
    queryset = Relationship.objects.filter(workspace=workspace, profile=person).select_related("object__object_type")
    if after is not None:
        queryset = queryset.filter(pk__gt=after)
    return list(queryset.order_by("pk")[: limit + 1])


# --- the console's dashboard ----------------------------------------------------------------------

def overview(workspace, *, since) -> dict:
    """The dashboard's people panel: how many people, events received since `since` (the start of
    the workspace's day; the BRIN index on `received_at` keeps this a range read at 10 M events) and
    the ingest backlog: operations accepted and not yet applied, and when the oldest arrived."""
    backlog = InboundOperation.objects.filter(workspace=workspace).aggregate(n=Count("pk"))["n"]
    oldest = (InboundOperation.objects.filter(workspace=workspace).order_by("id")
              .values_list("received_at", flat=True).first())
    return {"people": Profile.objects.filter(workspace=workspace).count(),
            "events_since": Event.objects.filter(workspace=workspace, received_at__gte=since).count(),
            "ingest_backlog": backlog, "ingest_oldest": oldest}
