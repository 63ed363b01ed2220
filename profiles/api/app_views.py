"""App API (/v1, Bearer app key): people, activities, object types, objects and relationships.

Paths and shapes follow Customer.io's App API where it has them. Reads need the `read` scope
(people search too, though it is a POST), writes `write`. Another workspace's person, object or
object type is a 404. Lists page with opaque keyset cursors: `start` in, `next` out.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from accounts.models import AppScope
from core.api.exceptions import error_response
from accounts.api.base import WorkspaceAPIView
from profiles import selectors, services
from profiles.api.app_filters import (
    clean_id_type,
    clean_limit,
    compile_people_filter,
    decode_cursor,
    next_cursor,
)
from profiles.api.app_serializers import (
    ActivitiesResponseSerializer,
    ActivitySerializer,
    CustomerListResponseSerializer,
    CustomerResponseSerializer,
    CustomerSerializer,
    CustomObjectSerializer,
    ObjectListResponseSerializer,
    ObjectPersonSerializer,
    ObjectRelationshipsResponseSerializer,
    ObjectResponseSerializer,
    ObjectTypeListResponseSerializer,
    ObjectTypeRenameSerializer,
    ObjectTypeSerializer,
    ObjectWriteSerializer,
    PeopleSearchRequestSerializer,
    PeopleSearchResponseSerializer,
    PersonIdentifiersSerializer,
    PersonObjectSerializer,
    PersonRelationshipsRequestSerializer,
    PersonRelationshipsResponseSerializer,
    clean_relationships,
)
from core.errors import InvalidInput
from profiles.ingest.operations import MAX_EVENT_NAME, clean_attributes, clean_str, require_dict
from profiles.models import EventType


def _param(name, description, *, location=OpenApiParameter.QUERY, **kwargs):
    return OpenApiParameter(name, OpenApiTypes.STR, location, description=description, **kwargs)


IDENTIFIER = _param("identifier", "The person's id, email or cio_id (see id_type), URL-encoded.",
                    location=OpenApiParameter.PATH)
ID_TYPE = _param("id_type", "What `identifier` is; default id.", enum=["id", "email", "cio_id"])
TYPE_ID = _param("type_id", "The object type's id (object_type_id).", location=OpenApiParameter.PATH)
OBJECT_PATH = [_param("object_type_id", "The object type's id.", location=OpenApiParameter.PATH),
               _param("object_id", "The object's id, URL-encoded.", location=OpenApiParameter.PATH)]
PAGING = [OpenApiParameter("limit", OpenApiTypes.INT, description="Page size: default 50, at most 1000."),
          _param("start", "The `next` of the previous page.")]


def _pk(row) -> tuple:
    return (row.pk,)


class AppView(WorkspaceAPIView):

    def query(self, name: str):
        return self.request.query_params.get(name)

    def paging(self) -> tuple[int, int | None]:
        return clean_limit(self.query("limit")), decode_cursor(self.query("start"))

    def person_or_404(self, identifier: str, *, with_devices: bool = False):
        id_type = clean_id_type(self.query("id_type"))
        person = selectors.find_person(self.workspace, id_type, identifier, with_devices=with_devices)
        if person is None:
            raise NotFound("Customer not found.")
        return person

    def object_type_or_404(self, type_id: str):
        object_type = selectors.find_object_type(self.workspace, type_id)
        if object_type is None:
            raise NotFound("Object type not found.")
        return object_type

    def object_or_404(self, object_type_id: str, object_id: str):
        obj = selectors.find_object(self.workspace, object_type_id, object_id)
        if obj is None:
            raise NotFound("Object not found.")
        return obj


# --- people ---------------------------------------------------------------------------------------

class CustomersView(AppView):
    required_scopes = {"POST": AppScope.READ}  # a search, not a write

    @extend_schema(operation_id="customers_by_email", responses=CustomerListResponseSerializer,
                   parameters=[_param("email", "The email address to look up.", required=True)])
    def get(self, request):
        email = clean_str(self.query("email"), "email", max_length=254)
        people = selectors.people_with_email(self.workspace, email)
        return Response({"results": PersonIdentifiersSerializer(people, many=True).data})

    @extend_schema(operation_id="customers_search", request=PeopleSearchRequestSerializer, parameters=PAGING,
                   responses=PeopleSearchResponseSerializer)
    def post(self, request):
        body = require_dict(request.data, None)
        if "filter" not in body:
            raise InvalidInput("filter", "is required")
        condition = compile_people_filter(body["filter"])
        limit = clean_limit(body.get("limit", self.query("limit")))
        after = decode_cursor(body.get("start", self.query("start")))
        rows = selectors.search_people(self.workspace, condition, after=after, limit=limit)
        people, cursor = next_cursor(rows, limit, _pk)
        return Response({
            "identifiers": PersonIdentifiersSerializer(people, many=True).data,
            "ids": [person.external_id for person in people if person.external_id],
            "next": cursor,
        })


class CustomerAttributesView(AppView):
    @extend_schema(operation_id="customer_attributes", parameters=[IDENTIFIER, ID_TYPE],
                   responses=CustomerResponseSerializer)
    def get(self, request, identifier):
        person = self.person_or_404(identifier, with_devices=True)
        return Response({"customer": CustomerSerializer(person).data})


class CustomerActivitiesView(AppView):
    @extend_schema(
        operation_id="customer_activities", responses=ActivitiesResponseSerializer,
        parameters=[IDENTIFIER, ID_TYPE, *PAGING,
                    _param("type", "Only this kind of activity.", enum=EventType.values),
                    _param("name", "Only events of this name.")],
    )
    def get(self, request, identifier):
        """The person's events, newest first.

        An activity's `type` is the event's own, named as Customer.io names it: `event` (a custom
        event), `page` (a page view), `screen` (a mobile screen view). Message and attribute-change
        activities are not events here; asking for those types is a 400.
        """
        kind = self.query("type") or None
        if kind is not None and kind not in EventType.values:
            raise InvalidInput("type", f"must be one of {', '.join(EventType.values)}")
        name = clean_str(self.query("name"), "name", max_length=MAX_EVENT_NAME, required=False)
        limit = clean_limit(self.query("limit"))
        before = decode_cursor(self.query("start"), with_timestamp=True)
        person = self.person_or_404(identifier)
        rows = selectors.activities(self.workspace, person, kind=kind, name=name, before=before, limit=limit)
        events, cursor = next_cursor(rows, limit, lambda event: (event.timestamp, event.pk))
        return Response({
            "activities": ActivitySerializer(events, many=True, context={"person": person}).data,
            "next": cursor,
        })


class CustomerRelationshipsView(AppView):
    delete_reads_body = True  # OpenAPI: DELETE takes the relationships to remove (core/api/schema.py)

    @extend_schema(operation_id="customer_relationships", parameters=[IDENTIFIER, ID_TYPE, *PAGING],
                   responses=PersonRelationshipsResponseSerializer)
    def get(self, request, identifier):
        return Response(self.page(self.person_or_404(identifier)))

    @extend_schema(operation_id="customer_relationships_add", parameters=[IDENTIFIER, ID_TYPE],
                   request=PersonRelationshipsRequestSerializer,
                   responses={200: PersonRelationshipsResponseSerializer})
    def post(self, request, identifier):
        """Relate the person to objects (created when missing; their object types must exist)."""
        return self.change(identifier, remove=False)

    @extend_schema(operation_id="customer_relationships_remove", parameters=[IDENTIFIER, ID_TYPE],
                   request=PersonRelationshipsRequestSerializer,
                   responses={200: PersonRelationshipsResponseSerializer})
    def delete(self, request, identifier):
        return self.change(identifier, remove=True)

    def change(self, identifier: str, *, remove: bool) -> Response:
        objects = clean_relationships(self.request.data)
        person = self.person_or_404(identifier)
        if not remove:
            self.require_object_types(objects)
        services.change_person_relationships(workspace=self.workspace, person=person, objects=objects, remove=remove)
        return Response(self.page(person))

    def require_object_types(self, objects: list[dict]) -> None:
        known = selectors.object_types_by_id(self.workspace, (item["object"]["type_id"] for item in objects))
        for index, item in enumerate(objects):
            if item["object"]["type_id"] not in known:
                raise InvalidInput(f"cio_relationships.{index}.identifiers.object_type_id",
                                   "no object type has this id; create it at /v1/object_types first")

    def page(self, person) -> dict:
        limit, after = self.paging()
        rows = selectors.person_relationships(self.workspace, person, after=after, limit=limit)
        relationships, cursor = next_cursor(rows, limit, _pk)
        return {"cio_relationships": PersonObjectSerializer(relationships, many=True).data, "next": cursor}


# --- object types ---------------------------------------------------------------------------------

class ObjectTypesView(AppView):
    """Object types of the workspace (Customer.io's `types`). `id` is the object_type_id."""

    @extend_schema(operation_id="object_types_list", responses=ObjectTypeListResponseSerializer)
    def get(self, request):
        return Response({"types": ObjectTypeSerializer(selectors.object_types(self.workspace), many=True).data})

    @extend_schema(operation_id="object_types_create", request=ObjectTypeSerializer,
                   responses={201: ObjectTypeSerializer})
    def post(self, request):
        serializer = ObjectTypeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            object_type = services.create_object_type(workspace=self.workspace, **serializer.validated_data)
        except services.ObjectTypeExists:
            return error_response("an object type with this id already exists", field="id")
        return Response(ObjectTypeSerializer(object_type).data, status=status.HTTP_201_CREATED)


class ObjectTypeView(AppView):
    @extend_schema(operation_id="object_type_retrieve", parameters=[TYPE_ID], responses=ObjectTypeSerializer)
    def get(self, request, type_id):
        return Response(ObjectTypeSerializer(self.object_type_or_404(type_id)).data)

    @extend_schema(operation_id="object_type_rename", parameters=[TYPE_ID], request=ObjectTypeRenameSerializer,
                   responses=ObjectTypeSerializer)
    def patch(self, request, type_id):
        object_type = self.object_type_or_404(type_id)
        serializer = ObjectTypeRenameSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        object_type = services.rename_object_type(object_type=object_type, **serializer.validated_data)
        return Response(ObjectTypeSerializer(object_type).data)

    @extend_schema(operation_id="object_type_destroy", parameters=[TYPE_ID], responses={204: None})
    def delete(self, request, type_id):
        """Deletes the type's objects and their relationships too."""
        services.delete_object_type(object_type=self.object_type_or_404(type_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- objects --------------------------------------------------------------------------------------

class ObjectsView(AppView):
    @extend_schema(operation_id="objects_list", responses=ObjectListResponseSerializer,
                   parameters=[_param("object_type_id", "Only objects of this type."), *PAGING])
    def get(self, request):
        type_id = self.query("object_type_id") or None
        limit, after = self.paging()
        rows = selectors.list_objects(self.workspace, type_id=type_id, after=after, limit=limit)
        objects, cursor = next_cursor(rows, limit, _pk)
        return Response({"objects": CustomObjectSerializer(objects, many=True).data, "next": cursor})


class ObjectView(AppView):
    @extend_schema(operation_id="object_retrieve", parameters=OBJECT_PATH, responses=ObjectResponseSerializer)
    def get(self, request, object_type_id, object_id):
        return Response({"object": CustomObjectSerializer(self.object_or_404(object_type_id, object_id)).data})

    @extend_schema(operation_id="object_replace", parameters=OBJECT_PATH, request=ObjectWriteSerializer,
                   responses={200: ObjectResponseSerializer, 201: ObjectResponseSerializer})
    def put(self, request, object_type_id, object_id):
        """Create the object, or replace all its attributes. Its object type must exist."""
        body = require_dict(request.data, None)
        if "attributes" not in body:
            raise InvalidInput("attributes", "is required")
        attributes = clean_attributes(body["attributes"], "attributes")
        object_id = clean_str(object_id, "object_id")
        object_type = self.object_type_or_404(object_type_id)
        obj, created = services.replace_object_attributes(
            workspace=self.workspace, object_type=object_type, object_id=object_id, attributes=attributes
        )
        return Response({"object": CustomObjectSerializer(obj).data},
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(operation_id="object_destroy", parameters=OBJECT_PATH, responses={204: None})
    def delete(self, request, object_type_id, object_id):
        services.delete_custom_object(obj=self.object_or_404(object_type_id, object_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ObjectRelationshipsView(AppView):
    @extend_schema(operation_id="object_relationships", parameters=[*OBJECT_PATH, *PAGING],
                   responses=ObjectRelationshipsResponseSerializer)
    def get(self, request, object_type_id, object_id):
        obj = self.object_or_404(object_type_id, object_id)
        limit, after = self.paging()
        rows = selectors.object_relationships(self.workspace, obj, after=after, limit=limit)
        relationships, cursor = next_cursor(rows, limit, _pk)
        return Response({"cio_relationships": ObjectPersonSerializer(relationships, many=True).data, "next": cursor})
