"""App API shapes for people, activities, objects and relationships (Customer.io's where they exist).

Times are Unix seconds, as Customer.io answers them. Response wrappers (`*ResponseSerializer`)
document the envelopes; the views build those envelopes around the row serializers.
"""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.errors import InvalidInput
from profiles.ingest.operations import (
    relationship_list,
    require_dict,
)
from profiles.models import CustomObject, Device, Event, ObjectType, Profile, Relationship

COLUMN_STAMPS = {"_email": "email", "_phone": "phone", "_unsubscribed": "unsubscribed"}


def unix(moment) -> int | None:
    return int(moment.timestamp()) if moment is not None else None


# --- people ---------------------------------------------------------------------------------------

class PersonIdentifiersSerializer(serializers.Serializer):
    id = serializers.CharField(source="external_id", allow_null=True)
    email = serializers.CharField(allow_null=True)
    cio_id = serializers.CharField()


class CustomerListResponseSerializer(serializers.Serializer):
    results = PersonIdentifiersSerializer(many=True)


class PeopleSearchRequestSerializer(serializers.Serializer):
    filter = serializers.JSONField(help_text=(
        'Customer.io filter subset: {"and": [...]}, {"or": [...]}, {"not": {...}}, '
        '{"attribute": {"field", "operator": "eq"|"exists", "value"}}. The fields id, email, '
        "cio_id, phone and unsubscribed match the person's columns; any other field an attribute."
    ))
    limit = serializers.IntegerField(required=False, help_text="Default 50, at most 1000 (also a query parameter).")
    start = serializers.CharField(required=False, help_text="The `next` of the previous page (also a query parameter).")


class PeopleSearchResponseSerializer(serializers.Serializer):
    identifiers = PersonIdentifiersSerializer(many=True)
    ids = serializers.ListField(child=serializers.CharField(), help_text="The `id` of each match that has one.")
    next = serializers.CharField(help_text="Cursor of the next page; empty on the last page.")


class DeviceSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="token")
    last_used = serializers.SerializerMethodField()

    class Meta:
        model = Device
        fields = ["id", "platform", "last_used", "attributes"]

    def get_last_used(self, device) -> int | None:
        return unix(device.last_used)


class CustomerSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="external_id", allow_null=True)
    identifiers = PersonIdentifiersSerializer(source="*")
    attributes = serializers.SerializerMethodField()
    timestamps = serializers.SerializerMethodField()
    devices = DeviceSerializer(many=True)

    class Meta:
        model = Profile
        fields = ["id", "identifiers", "attributes", "timestamps", "unsubscribed", "devices"]

    def get_attributes(self, person) -> dict:
        """The stored attributes plus the identifiers and contact columns, as Customer.io lists them."""
        columns = {"id": person.external_id, "cio_id": person.cio_id, "email": person.email, "phone": person.phone}
        return {"created_at": unix(person.created_at), **person.attributes,
                **{name: value for name, value in columns.items() if value is not None}}

    def get_timestamps(self, person) -> dict[str, int]:
        """When each attribute shown was last set (removed attributes keep a stamp but are left out)."""
        shown = self.get_attributes(person)
        stamps = {COLUMN_STAMPS.get(name, name): int(ts) for name, ts in person.attribute_timestamps.items()}
        return {"created_at": unix(person.created_at),
                **{name: ts for name, ts in stamps.items() if name in shown}}


class CustomerResponseSerializer(serializers.Serializer):
    customer = CustomerSerializer()


# --- activities -----------------------------------------------------------------------------------

class ActivitySerializer(serializers.ModelSerializer):
    """An event of the person. `context["person"]` is its person (the rows are that person's)."""

    id = serializers.SerializerMethodField()
    type = serializers.CharField(help_text="event, page (a page view) or screen (a mobile screen view).")
    timestamp = serializers.SerializerMethodField()
    customer_id = serializers.SerializerMethodField()
    customer_identifiers = serializers.SerializerMethodField()

    class Meta:
        model = Event
        fields = ["id", "type", "name", "timestamp", "data", "customer_id", "customer_identifiers"]

    def get_id(self, event) -> str:
        return str(event.pk)

    def get_timestamp(self, event) -> int:
        return unix(event.timestamp)

    def get_customer_id(self, event) -> str | None:
        return self.context["person"].external_id

    @extend_schema_field(PersonIdentifiersSerializer)
    def get_customer_identifiers(self, event):
        return PersonIdentifiersSerializer(self.context["person"]).data


class ActivitiesResponseSerializer(serializers.Serializer):
    activities = ActivitySerializer(many=True)
    next = serializers.CharField(help_text="Cursor of the next page; empty on the last page.")


# --- object types and objects ---------------------------------------------------------------------

class ObjectTypeSerializer(serializers.ModelSerializer):
    id = serializers.RegexField(
        r"^[^/]+$", source="type_id", max_length=64,
        help_text='The object_type_id clients send, e.g. "1". No "/".',
    )
    created_at = serializers.SerializerMethodField()

    class Meta:
        model = ObjectType
        fields = ["id", "name", "created_at"]

    def get_created_at(self, object_type) -> int:
        return unix(object_type.created_at)


class ObjectTypeRenameSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)


class ObjectTypeListResponseSerializer(serializers.Serializer):
    types = ObjectTypeSerializer(many=True)


class ObjectIdentifiersSerializer(serializers.Serializer):
    object_type_id = serializers.CharField(source="object_type.type_id")
    object_id = serializers.CharField()


class CustomObjectSerializer(serializers.ModelSerializer):
    identifiers = ObjectIdentifiersSerializer(source="*")
    timestamps = serializers.SerializerMethodField()
    created_at = serializers.SerializerMethodField()
    updated_at = serializers.SerializerMethodField()

    class Meta:
        model = CustomObject
        fields = ["identifiers", "attributes", "timestamps", "created_at", "updated_at"]

    def get_timestamps(self, obj) -> dict[str, int]:
        return {name: int(ts) for name, ts in obj.attribute_timestamps.items() if name in obj.attributes}

    def get_created_at(self, obj) -> int:
        return unix(obj.created_at)

    def get_updated_at(self, obj) -> int:
        return unix(obj.updated_at)


class ObjectResponseSerializer(serializers.Serializer):
    object = CustomObjectSerializer()


class ObjectListResponseSerializer(serializers.Serializer):
    objects = CustomObjectSerializer(many=True)
    next = serializers.CharField(help_text="Cursor of the next page; empty on the last page.")


class ObjectWriteSerializer(serializers.Serializer):
    attributes = serializers.DictField(help_text="The object's complete attributes; what is left out is removed.")


# --- relationships --------------------------------------------------------------------------------

class ObjectPersonSerializer(serializers.ModelSerializer):
    """A relationship seen from the object: the person and the relationship's attributes."""

    identifiers = PersonIdentifiersSerializer(source="profile")
    relationship_attributes = serializers.JSONField(source="attributes")

    class Meta:
        model = Relationship
        fields = ["identifiers", "relationship_attributes"]


class PersonObjectSerializer(serializers.ModelSerializer):
    """A relationship seen from the person: the object and the relationship's attributes."""

    identifiers = ObjectIdentifiersSerializer(source="object")
    relationship_attributes = serializers.JSONField(source="attributes")

    class Meta:
        model = Relationship
        fields = ["identifiers", "relationship_attributes"]


class ObjectRelationshipsResponseSerializer(serializers.Serializer):
    cio_relationships = ObjectPersonSerializer(many=True)
    next = serializers.CharField()


class PersonRelationshipsResponseSerializer(serializers.Serializer):
    cio_relationships = PersonObjectSerializer(many=True)
    next = serializers.CharField()


class RelationshipItemSerializer(serializers.Serializer):
    identifiers = ObjectIdentifiersSerializer()
    relationship_attributes = serializers.DictField(required=False)


class PersonRelationshipsRequestSerializer(serializers.Serializer):
    cio_relationships = RelationshipItemSerializer(many=True)


# --- request bodies that need more than field checks ----------------------------------------------

MAX_RELATIONSHIPS_PER_REQUEST = 1000


def clean_relationships(body, field: str = "cio_relationships") -> list[dict]:
    """{"cio_relationships": [{"identifiers": {object_type_id, object_id}, "relationship_attributes"}]}
    → [{"object": {"type_id", "object_id"}, "attributes"}], the ingest operations' shape."""
    items = require_dict(body, None).get(field)
    if not isinstance(items, list) or not items:
        raise InvalidInput(field, "must be a non-empty list of relationships")
    if len(items) > MAX_RELATIONSHIPS_PER_REQUEST:
        raise InvalidInput(field, f"at most {MAX_RELATIONSHIPS_PER_REQUEST} relationships per request")
    return relationship_list(items, field)
