"""Segments over the App API (/v1/segments, Bearer app key) and the Track API
(/api/v1/segments/{id}/add_customers|remove_customers, Basic site_id:key).

Shapes follow Customer.io: one segment is `{"segment": {...}}`, a list `{"segments": [...]}`;
`type` is "dynamic" (data-driven, with `conditions`) or "manual". Create and update take
`{"segment": {"name", "description", "type", "conditions"}}`; without a `type`, a segment with
conditions is dynamic and one without is manual. Bad conditions are a 400 naming the path
(`segment.conditions.and.0.attribute.operator`; `conditions...` for preview).

Reads need the `read` scope (preview too, though it is a POST: it saves nothing), writes `write`.
Another workspace's segment is a 404. Membership pages with an opaque cursor (`start` in, `next`
out) in a constant number of queries. `add_customers` / `remove_customers` take `{"ids": [...]}`
with `?id_type=id|email|cio_id` (default id), apply at once (they manage a manual segment; they
are not ingested data), answer which ids named nobody, and are a 400 on a data segment.
"""

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from accounts.models import AppScope
from accounts.api.base import WorkspaceAPIView, WorkspaceViewSet
from core.api.schema import error_responses
from profiles.api import openapi as doc
from profiles.api.app_filters import clean_id_type, clean_limit, decode_cursor, next_cursor
from profiles.api.app_serializers import PersonIdentifiersSerializer
from profiles.api.track_v1 import TrackV1View
from core.errors import InvalidInput
from profiles.models import Segment, SegmentKind
from profiles.segments import services
from profiles.segments.kinds import validating_segment

TYPES = {SegmentKind.DATA: "dynamic", SegmentKind.MANUAL: "manual"}
KINDS = {name: kind for kind, name in TYPES.items()}
MAX_IDS = 1000
PREVIEW_SAMPLE = 10


def segment_json(segment: Segment) -> dict:
    return {
        "id": segment.pk, "name": segment.name, "description": segment.description,
        "type": TYPES[segment.kind], "conditions": segment.conditions, "state": segment.state,
        "progress": segment.progress, "member_count": segment.member_count,
        "computed_at": segment.computed_at.isoformat() if segment.computed_at else None,
    }


def identifiers(people) -> list[dict]:
    return PersonIdentifiersSerializer(people, many=True).data


def clean_ids(body, id_type: str) -> list[dict]:
    """`{"ids": [...]}` → person references of `id_type`."""
    if not isinstance(body, dict) or "ids" not in body:
        raise InvalidInput("ids", "is required")
    ids = body["ids"]
    if not isinstance(ids, list):
        raise InvalidInput("ids", "must be a list")
    if len(ids) > MAX_IDS:
        raise InvalidInput("ids", f"must hold at most {MAX_IDS} ids")
    refs = []
    for index, value in enumerate(ids):
        if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value).strip() == "":
            raise InvalidInput(f"ids.{index}", "must be a non-empty string or number")
        refs.append({id_type: str(value)})
    return refs


def change_membership(segment: Segment, refs: list[dict], *, remove: bool) -> dict:
    change = services.remove_people if remove else services.add_people
    try:
        result = change(segment=segment, people=refs)
    except InvalidInput as exc:
        if exc.field and exc.field.startswith("people."):
            raise InvalidInput("ids." + exc.field.split(".")[1], exc.message) from exc
        raise
    changed = result["exited" if remove else "entered"]
    return {"count": len(changed), "unknown_ids": [next(iter(ref.values())) for ref in result["unknown"]]}


def _definition(body) -> dict:
    if not isinstance(body, dict) or not isinstance(body.get("segment"), dict):
        raise InvalidInput("segment", "is required and must be an object")
    return body["segment"]


def _prefixed(call):
    try:
        return call()
    except InvalidInput as exc:
        raise exc.prefixed("segment") from exc


class SegmentViewSet(WorkspaceViewSet):
    model = Segment
    pagination_class = None  # the list answers every segment, in its envelope

    def safely_get_queryset(self, queryset):
        return queryset.order_by("pk")

    @extend_schema(operation_id="segments_list", responses={200: doc.SegmentList})
    def list(self, request):
        return Response({"segments": [segment_json(s) for s in self.get_queryset()]})

    @extend_schema(operation_id="segments_create", request=doc.SegmentCreate, responses={201: doc.SegmentResponse})
    def create(self, request):
        data = _definition(request.data)
        kind_name = data.get("type", "dynamic" if data.get("conditions") else "manual")
        if kind_name not in KINDS:
            raise InvalidInput("segment.type", "must be dynamic or manual")
        segment = _prefixed(lambda: services.create_segment(
            workspace=self.workspace, name=data.get("name"), kind=KINDS[kind_name],
            conditions=data.get("conditions"), description=data.get("description", "")))
        return Response({"segment": segment_json(segment)}, status=status.HTTP_201_CREATED)

    @extend_schema(operation_id="segments_get", responses={200: doc.SegmentResponse})
    def retrieve(self, request, pk):
        return Response({"segment": segment_json(self.get_object())})

    @extend_schema(methods=["PUT"], operation_id="segments_replace", request=doc.SegmentUpdate,
                   responses={200: doc.SegmentResponse}, description="As PATCH: only the fields given change.")
    @extend_schema(methods=["PATCH"], operation_id="segments_update", request=doc.SegmentUpdate,
                   responses={200: doc.SegmentResponse})
    def partial_update(self, request, pk):
        segment = self.get_object()
        data = _definition(request.data)
        if "type" in data and KINDS.get(data["type"]) != segment.kind:
            raise InvalidInput("segment.type", "cannot be changed")
        changes = {key: data[key] for key in ("name", "description", "conditions") if key in data}
        with validating_segment(segment.pk):  # its conditions may not name it
            _prefixed(lambda: services.update_segment(segment=segment, **changes))
        return Response({"segment": segment_json(segment)})

    @extend_schema(operation_id="segments_delete", responses={204: None})
    def destroy(self, request, pk):
        services.delete_segment(segment=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(operation_id="segments_membership", parameters=doc.PAGING, responses={200: doc.SegmentMembers})
    def membership(self, request, pk):
        """Current members by ascending internal id, `limit` (default 50, at most 1000) per page."""
        segment = self.get_object()
        limit = clean_limit(request.query_params.get("limit"))
        after = decode_cursor(request.query_params.get("start"))
        members = services.current_members(segment)
        if after is not None:
            members = members.filter(pk__gt=after)
        people, cursor = next_cursor(list(members[: limit + 1]), limit, lambda person: (person.pk,))
        return Response({
            "identifiers": identifiers(people),
            "ids": [person.external_id for person in people if person.external_id],
            "next": cursor,
        })

    @extend_schema(operation_id="segments_customer_count", responses={200: doc.SegmentCount})
    def customer_count(self, request, pk):
        return Response({"count": services.current_members(self.get_object()).count()})

    @extend_schema(operation_id="segments_add_customers", parameters=[doc.ID_TYPE], request=doc.SegmentPeople,
                   responses={200: doc.SegmentChange})
    def add_customers(self, request, pk):
        return self.change(remove=False)

    @extend_schema(operation_id="segments_remove_customers", parameters=[doc.ID_TYPE], request=doc.SegmentPeople,
                   responses={200: doc.SegmentChange})
    def remove_customers(self, request, pk):
        return self.change(remove=True)

    def change(self, *, remove: bool) -> Response:
        segment = self.get_object()
        refs = clean_ids(self.request.data, clean_id_type(self.request.query_params.get("id_type")))
        return Response(change_membership(segment, refs, remove=remove))


class SegmentPreviewView(WorkspaceAPIView):
    required_scopes = {"POST": AppScope.READ}  # evaluates, saves nothing

    @extend_schema(operation_id="segments_preview", request=doc.SegmentPreviewRequest,
                   responses={200: doc.SegmentPreview})
    def post(self, request):
        """`{"conditions": tree}` → how many people match now and up to 10 of them."""
        from profiles.segments import conditions

        if not isinstance(request.data, dict) or "conditions" not in request.data:
            raise InvalidInput("conditions", "is required")
        tree = conditions.validate(request.data["conditions"])
        people = conditions.matching(self.workspace, tree)
        sample = list(people.order_by("pk")[:PREVIEW_SAMPLE])
        count = len(sample) if len(sample) < PREVIEW_SAMPLE else people.count()
        return Response({"count": count, "sample": identifiers(sample)})


# --- Track API ------------------------------------------------------------------------------------

class TrackSegmentMembershipView(TrackV1View):
    """POST /api/v1/segments/{id}/add_customers|remove_customers, applied synchronously."""

    remove = False

    def post(self, request, segment_id):
        segment = Segment.objects.filter(pk=segment_id).first()
        if segment is None:
            raise NotFound("Segment not found.")
        refs = clean_ids(request.data, clean_id_type(request.query_params.get("id_type")))
        return Response(change_membership(segment, refs, remove=self.remove))


def track_membership_schema(action: str):
    return extend_schema(operation_id=f"track_v1_segment_{action}", tags=["track_v1"],
                         parameters=[doc.SEGMENT_PATH, doc.ID_TYPE], request={"application/json": doc.SegmentPeople},
                         responses={200: doc.SegmentChange, **error_responses(404)})


class TrackAddCustomersView(TrackSegmentMembershipView):
    remove = False

    @track_membership_schema("add_customers")
    def post(self, request, segment_id):
        return super().post(request, segment_id)


class TrackRemoveCustomersView(TrackSegmentMembershipView):
    remove = True

    @track_membership_schema("remove_customers")
    def post(self, request, segment_id):
        return super().post(request, segment_id)
