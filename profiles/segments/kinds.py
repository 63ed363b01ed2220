"""The condition kinds of profiles: `attribute`, `event`, `object` and `segment` (registered first, by
profiles/segments/registry.py). Grammar and semantics: docs/segments.md ("Condition language").

Event counts: over the whole workspace, "at least N" (N >= 2) is `pk IN (events grouped by person
HAVING count >= N)`, one pass over the matching events. For a few people (live upkeep:
`matching(..., profile_ids=...)`) it is EXISTS over the person's N-th matching event (OFFSET N-1
LIMIT 1): at most N index entries of (workspace, profile, -timestamp) per person. N = 1 is a plain
EXISTS either way.
"""

from contextlib import contextmanager
from contextvars import ContextVar

from django.db.models import Count, DecimalField, Exists, F, OuterRef, Q, TextField

from core.errors import InvalidInput
from profiles.models import Event, Relationship, Segment, SegmentMembership
from profiles.segments.base import ConditionKind, Sql, parse_time, require, within, window_start
from profiles.segments.descriptions import describe_attribute, describe_event, describe_object, describe_segment
from profiles.segments.filters import (
    RELATIVE_OPERATORS, Target, Valued, all_match, filter_matches, filter_sql, filters_q, json_target,
    uses_relative_dates, validate_filter, validate_filters,
)

TEXT_COLUMNS = {"email": "email", "phone": "phone", "id": "external_id", "cio_id": "cio_id"}
COUNT_OPERATORS = {"at_least": ">=", "at_most": "<=", "exactly": "="}

# Set by `matching(..., profile_ids=...)`: the tree is evaluated for a handful of people, so
# per-person index probes beat one pass over all of the workspace's matching events.
FEW_PEOPLE: ContextVar[bool] = ContextVar("segment_few_people", default=False)


# --- attribute -----------------------------------------------------------------------------------

def _validate_attribute(body, path, context):
    return validate_filter(body, path, field_kind="profile")


def _profile_target(field):
    if field in TEXT_COLUMNS:
        return Target(F(TEXT_COLUMNS[field]))
    if field == "unsubscribed":
        return Target(Sql("(@0)::text", F("unsubscribed"), output_field=TextField()))
    if field == "created_at":
        created = F("created_at")
        return Target(Sql("(@0)::text", created, output_field=TextField()),
                      epoch=Sql("extract(epoch from @0)", created, output_field=DecimalField()))
    return json_target("attributes", field)


def _compile_attribute(workspace, spec, now):
    return Q(filter_sql(_profile_target(spec["field"]), spec, now))


def _attribute_depends_on(spec):
    return {"attributes", "time"} if spec["operator"] in RELATIVE_OPERATORS else {"attributes"}


def _attribute_reference(spec, context):
    person, field = context.person, spec["field"]
    if field in TEXT_COLUMNS:
        value = Valued(person[TEXT_COLUMNS[field]])
    elif field == "unsubscribed":
        value = Valued(person["unsubscribed"])
    elif field == "created_at":
        value = Valued.of_time(person["created_at"])
    else:
        value = Valued(person["attributes"].get(field))
    return filter_matches(value, spec, context.now)


ATTRIBUTE = ConditionKind("attribute", validate=_validate_attribute, compile=_compile_attribute,
                          depends_on=_attribute_depends_on, reference=_attribute_reference,
                          describe=describe_attribute)


# --- event ---------------------------------------------------------------------------------------

def _validate_event(body, path, context):
    name = require(body, "name", path)
    if not isinstance(name, str) or not name or len(name) > 255:
        raise InvalidInput(f"{path}.name", "must be an event name (1-255 characters)")
    operator = body.get("operator", "performed")
    if operator not in ("performed", "not_performed"):
        raise InvalidInput(f"{path}.operator", "must be performed or not_performed")
    count = body.get("count", {"operator": "at_least", "value": 1})
    if not isinstance(count, dict):
        raise InvalidInput(f"{path}.count", "must be an object {operator, value}")
    if count.get("operator") not in COUNT_OPERATORS:
        raise InvalidInput(f"{path}.count.operator", "must be at_least, at_most or exactly")
    n = count.get("value")
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise InvalidInput(f"{path}.count.value", "must be a whole number, 0 or more")
    out = {"name": name, "operator": operator, "count": {"operator": count["operator"], "value": n}}
    if "within" in body and "between" in body:
        raise InvalidInput(f"{path}.between", "give either within or between, not both")
    if "within" in body:
        out["within"] = within(body["within"], f"{path}.within")
    if "between" in body:
        between = body["between"]
        if not isinstance(between, list) or len(between) != 2:
            raise InvalidInput(f"{path}.between", "must be [start, end]")
        times = [parse_time(item) for item in between]
        for i, parsed in enumerate(times):
            if parsed is None:
                raise InvalidInput(f"{path}.between.{i}", "must be a date (ISO 8601 or Unix seconds)")
        if times[0] > times[1]:
            raise InvalidInput(f"{path}.between", "start must not be after end")
        out["between"] = list(between)
    out["filters"] = validate_filters(body, "filters", path)
    return out


def _at_least(events, n):
    """People with at least `n` of `events` (an Event queryset not yet tied to a person)."""
    if n == 1:
        return Q(Exists(events.filter(profile=OuterRef("pk"))))
    if FEW_PEOPLE.get():
        return Q(Exists(events.filter(profile=OuterRef("pk")).order_by()[n - 1:n]))
    grouped = events.order_by().values("profile_id").annotate(matched=Count("pk")).filter(matched__gte=n)
    return Q(pk__in=grouped.values("profile_id"))


def _compile_event(workspace, spec, now):
    events = Event.objects.for_workspace(workspace).filter(name=spec["name"])
    if "within" in spec:
        events = events.filter(timestamp__gte=window_start(spec["within"], now), timestamp__lte=now)
    if "between" in spec:
        start, end = (parse_time(item) for item in spec["between"])
        events = events.filter(timestamp__gte=start, timestamp__lte=end)
    events = events.filter(filters_q(spec["filters"], "data", now))
    operator, n = spec["count"]["operator"], spec["count"]["value"]
    at_least_n = _at_least(events, n) if n else Q(pk__isnull=False)
    if operator == "at_least":
        q = at_least_n
    elif operator == "at_most":
        q = ~_at_least(events, n + 1)
    else:
        q = at_least_n & ~_at_least(events, n + 1)
    return ~q if spec["operator"] == "not_performed" else q


def _event_depends_on(spec):
    out = {f"events:{spec['name']}"}
    if "within" in spec or uses_relative_dates(spec["filters"]):
        out.add("time")
    return out


def _event_reference(spec, context):
    now = context.now

    def counts(event):
        if event["name"] != spec["name"]:
            return False
        if "within" in spec and not window_start(spec["within"], now) <= event["timestamp"] <= now:
            return False
        if "between" in spec:
            start, end = (parse_time(item) for item in spec["between"])
            if not start <= event["timestamp"] <= end:
                return False
        return all_match(spec["filters"], event["data"], now)

    n = sum(1 for event in context.events if counts(event))
    wanted = spec["count"]["value"]
    result = {"at_least": n >= wanted, "at_most": n <= wanted, "exactly": n == wanted}[spec["count"]["operator"]]
    return result if spec["operator"] == "performed" else not result


EVENT = ConditionKind("event", validate=_validate_event, compile=_compile_event, depends_on=_event_depends_on,
                      reference=_event_reference, describe=describe_event)


# --- object --------------------------------------------------------------------------------------

def _validate_object(body, path, context):
    type_id = require(body, "object_type_id", path)
    if isinstance(type_id, int) and not isinstance(type_id, bool):
        type_id = str(type_id)
    if not isinstance(type_id, str) or not type_id:
        raise InvalidInput(f"{path}.object_type_id", "must be an object type id, e.g. \"1\"")
    return {"object_type_id": type_id, "filters": validate_filters(body, "filters", path),
            "relationship_filters": validate_filters(body, "relationship_filters", path)}


def _compile_object(workspace, spec, now):
    relationships = Relationship.objects.for_workspace(workspace).filter(
        profile=OuterRef("pk"), object__object_type__type_id=spec["object_type_id"],
        object__object_type__workspace=workspace,
    ).filter(filters_q(spec["filters"], "object__attributes", now)).filter(
        filters_q(spec["relationship_filters"], "attributes", now))
    return Q(Exists(relationships))


def _object_depends_on(spec):
    return {"objects", "time"} if uses_relative_dates(spec["filters"] + spec["relationship_filters"]) else {"objects"}


def _object_reference(spec, context):
    return any(
        type_id == spec["object_type_id"]
        and all_match(spec["filters"], attributes, context.now)
        and all_match(spec["relationship_filters"], relationship, context.now)
        for type_id, attributes, relationship in context.objects
    )


OBJECT = ConditionKind("object", validate=_validate_object, compile=_compile_object,
                       depends_on=_object_depends_on, reference=_object_reference, describe=describe_object)


# --- segment -------------------------------------------------------------------------------------

# The id of the segment whose conditions are being validated, while `validating_segment` says so
# (an update, in the App API and the admin): a condition naming it is a self-reference.
SAVING_SEGMENT: ContextVar[int | None] = ContextVar("segment_being_saved", default=None)
MAX_SEGMENT_ID = 2**63 - 1  # a bigint


@contextmanager
def validating_segment(segment_id: int | None):
    """Validate conditions as those of segment `segment_id` (None: a segment not saved yet)."""
    token = SAVING_SEGMENT.set(segment_id)
    try:
        yield
    finally:
        SAVING_SEGMENT.reset(token)


def _validate_segment(body, path, context):
    """The id must be a segment of the validation context's workspace (when there is one) other
    than the segment being saved. Compiling never checks: a segment deleted later makes the leaf
    match nobody (`not_member`: everybody), not the recompute fail."""
    segment_id = require(body, "id", path)
    if isinstance(segment_id, str) and segment_id.isdigit():
        segment_id = int(segment_id)
    if not isinstance(segment_id, int) or isinstance(segment_id, bool) or not 0 < segment_id <= MAX_SEGMENT_ID:
        raise InvalidInput(f"{path}.id", "must be a segment id")
    operator = body.get("operator", "member")
    if operator not in ("member", "not_member"):
        raise InvalidInput(f"{path}.operator", "must be member or not_member")
    if segment_id == SAVING_SEGMENT.get():
        raise InvalidInput(f"{path}.id", "a segment cannot be defined by its own membership")
    workspace = context.workspace
    if workspace is not None and not Segment.objects.for_workspace(workspace).filter(pk=segment_id).exists():
        raise InvalidInput(f"{path}.id", "no segment of this workspace has this id")
    return {"id": segment_id, "operator": operator}


def _compile_segment(workspace, spec, now):
    members = SegmentMembership.objects.for_workspace(workspace).filter(
        segment_id=spec["id"], profile=OuterRef("pk"), exited_at__isnull=True)
    q = Q(Exists(members))
    return q if spec["operator"] == "member" else ~q


def _segment_reference(spec, context):
    return (spec["id"] in context.memberships) == (spec["operator"] == "member")


SEGMENT = ConditionKind("segment", validate=_validate_segment, compile=_compile_segment,
                        depends_on=lambda spec: {f"segments:{spec['id']}"}, reference=_segment_reference,
                        describe=describe_segment)

PROFILE_KINDS = (ATTRIBUTE, EVENT, OBJECT, SEGMENT)
