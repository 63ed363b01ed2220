"""What the console's segment builder shows for profiles' condition kinds (attribute, event, object,
segment): each kind's `describe(workspace)`, in the field-spec language of
profiles/segments/builder.py. Choices read from the workspace (object types, segments) are bounded
and cost one query each, whatever the number of rows."""

from profiles.models import ObjectType, Segment
from profiles.segments.base import choice_spec, window_spec
from profiles.segments.filters import ATTRIBUTE_OPERATORS, VALUELESS_OPERATORS

CHOICES_SHOWN = 500  # object types or segments offered in a list; others can still be typed as JSON

OPERATOR_LABELS = {
    "eq": "is", "neq": "is not", "exists": "exists", "not_exists": "does not exist", "contains": "contains",
    "starts_with": "starts with", "gt": "is greater than / after", "gte": "is at least / on or after",
    "lt": "is less than / before", "lte": "is at most / on or before", "in": "is one of",
    "within_last_days": "is in the last … days", "within_next_days": "is in the next … days",
    "anniversary": "has its anniversary today",
}
OPERATOR_ORDER = ["eq", "neq", "contains", "starts_with", "in", "gt", "gte", "lt", "lte", "exists", "not_exists",
                  "within_last_days", "within_next_days", "anniversary"]
assert set(OPERATOR_ORDER) == ATTRIBUTE_OPERATORS, "every filter operator has its place in the builder"


def filter_fields(placeholder: str, suggest: str | None = None) -> list[dict]:
    """The fields of one `{field, operator, value}` filter."""
    field = {"type": "text", "max_length": 150, "placeholder": placeholder}
    if suggest:
        field["suggest"] = suggest
    return [
        {"key": "field", "label": "", "spec": field},
        {"key": "operator", "label": "", "spec": choice_spec(OPERATOR_ORDER, OPERATOR_LABELS)},
        {"key": "value", "label": "", "omit_when": {"operator": sorted(VALUELESS_OPERATORS)},
         "spec": {"type": "filter_value", "list": ["in"], "integer": ["within_last_days", "within_next_days"]}},
    ]


def filters_spec(add_label: str) -> dict:
    return {"type": "list", "max": 50, "add_label": add_label,
            "item": {"type": "object", "fields": filter_fields("key")},
            "item_default": {"field": "", "operator": "eq", "value": ""}}


def describe_attribute(workspace) -> dict:
    return {
        "label": "Attribute",
        "help": "A column of the person (email, phone, id, cio_id, unsubscribed, created_at) or a top-level key "
                "of their attributes.",
        "body": {"type": "object", "fields": filter_fields("attribute, e.g. plan", suggest="attributes")},
        "default": {"field": "", "operator": "eq", "value": ""},
    }


def describe_event(workspace) -> dict:
    return {
        "label": "Event",
        "help": "Did (or did not do) an event, a number of times, in a window, with conditions on its data.",
        "body": {"type": "object", "fields": [
            {"key": "operator", "label": "", "spec": choice_spec(["performed", "not_performed"],
                                                                 {"performed": "did", "not_performed": "did not do"})},
            {"key": "name", "label": "", "spec": {"type": "text", "suggest": "events", "max_length": 255,
                                                  "placeholder": "event name"}},
            {"key": "count", "label": "", "spec": {"type": "object", "fields": [
                {"key": "operator", "label": "", "spec": choice_spec(
                    ["at_least", "at_most", "exactly"],
                    {"at_least": "at least", "at_most": "at most", "exactly": "exactly"})},
                {"key": "value", "label": "", "suffix": "times", "spec": {"type": "integer", "min": 0}},
            ]}},
            {"key": "within", "label": "in the last", "optional": True, "group": "when",
             "default": {"value": 30, "unit": "days"}, "spec": window_spec()},
            {"key": "between", "label": "between", "optional": True, "group": "when", "default": ["", ""],
             "spec": {"type": "date_range"}},
            {"key": "filters", "label": "where the event's data", "spec": filters_spec("Add a data condition")},
        ]},
        "default": {"name": "", "operator": "performed", "count": {"operator": "at_least", "value": 1}, "filters": []},
    }


def describe_object(workspace) -> dict:
    type_id = {"type": "text", "max_length": 64}
    if workspace is not None:
        types = ObjectType.objects.for_workspace(workspace).order_by("name", "pk")[:CHOICES_SHOWN]
        type_id = {"type": "choice", "choices": [{"value": t.type_id, "label": f"{t.name} ({t.type_id})"}
                                                 for t in types]}
    return {
        "label": "Object",
        "help": "Related to at least one object of a type, through a relationship, both with conditions on their "
                "attributes.",
        "body": {"type": "object", "fields": [
            {"key": "object_type_id", "label": "Object type", "spec": type_id},
            {"key": "filters", "label": "whose attributes", "spec": filters_spec("Add an object condition")},
            {"key": "relationship_filters", "label": "through a relationship whose attributes",
             "spec": filters_spec("Add a relationship condition")},
        ]},
        "default": {"object_type_id": "", "filters": [], "relationship_filters": []},
    }


def describe_segment(workspace) -> dict:
    segment_id = {"type": "integer", "min": 1}
    if workspace is not None:
        segments = Segment.objects.for_workspace(workspace).order_by("name", "pk").only("pk", "name")[:CHOICES_SHOWN]
        segment_id = {"type": "choice", "choices": [{"value": s.pk, "label": s.name} for s in segments]}
    return {
        "label": "Segment membership",
        "help": "Is (or is not) a current member of another segment.",
        "body": {"type": "object", "fields": [
            {"key": "operator", "label": "", "spec": choice_spec(["member", "not_member"],
                                                                 {"member": "is in", "not_member": "is not in"})},
            {"key": "id", "label": "Segment", "spec": segment_id},
        ]},
        "default": {"operator": "member", "id": None},
    }
