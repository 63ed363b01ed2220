"""Customer.io Track API v1, as the `customerio` client calls it. Success is 200 with `{}`."""

from drf_spectacular.utils import extend_schema

from accounts.authentication import TrackApiAuthentication
from profiles.api import openapi as doc
from profiles.api.ingest_base import IngestView
from core.api.schema import ApiAutoSchema, ApiSchema
from profiles.ingest import metrics, track_v1

ACCEPTED = {200: doc.TrackAccepted}


def track_schema(operation_id: str, request=None, **kwargs):
    """A Track v1 operation: a JSON body (clients may send it without a Content-Type), `{}` when staged."""
    return extend_schema(operation_id=f"track_v1_{operation_id}", tags=["track_v1"], responses=ACCEPTED,
                         request={"application/json": request} if request is not None else None, **kwargs)


class TrackV1View(IngestView):
    authentication_classes = [TrackApiAuthentication]
    key_kind = "track"
    source = "track_v1"


class CustomerView(TrackV1View):
    @track_schema("identify", doc.Identify, parameters=[doc.PERSON_PATH])
    def put(self, request, identifier):
        return self.accepted([track_v1.identify(identifier, request.data, self.now())])

    @track_schema("delete", parameters=[doc.PERSON_PATH],
                  description="A compliance deletion request: the person and everything about them is removed.")
    def delete(self, request, identifier):
        return self.accepted([track_v1.person_action(identifier, "delete")])


class CustomerEventsView(TrackV1View):
    @track_schema("event", doc.Event, parameters=[doc.PERSON_PATH])
    def post(self, request, identifier):
        return self.accepted([track_v1.customer_event(identifier, request.data, self.now())])


class AnonymousEventsView(TrackV1View):
    @track_schema("anonymous_event", doc.AnonymousEvent)
    def post(self, request):
        return self.accepted([track_v1.anonymous_event(request.data, self.now())])


class DevicesView(TrackV1View):
    @track_schema("add_device", doc.Device, parameters=[doc.PERSON_PATH])
    def put(self, request, identifier):
        return self.accepted([track_v1.add_device(identifier, request.data)])


class DeviceView(TrackV1View):
    @track_schema("delete_device", parameters=[doc.PERSON_PATH])
    def delete(self, request, identifier, token):
        return self.accepted([track_v1.delete_device(identifier, token)])


class SuppressView(TrackV1View):
    action = "suppress"

    @track_schema("suppress", parameters=[doc.PERSON_PATH])
    def post(self, request, identifier):
        return self.accepted([track_v1.person_action(identifier, self.action)])


class UnsuppressView(SuppressView):
    action = "unsuppress"

    @track_schema("unsuppress", parameters=[doc.PERSON_PATH])
    def post(self, request, identifier):
        return super().post(request, identifier)


class MergeCustomersView(TrackV1View):
    @track_schema("merge_customers", doc.Merge)
    def post(self, request):
        return self.accepted([track_v1.merge(request.data)])


class MetricsView(TrackV1View):
    """Delivery metrics reported by the client (`POST /api/v1/metrics`)."""

    @track_schema("metric", doc.Metric)
    def post(self, request):
        return self.accepted([metrics.v1_metric(request.data, self.now())])


class PushEventsSchema(ApiAutoSchema):
    def get_operation_id(self):
        return "track_v1_push_event" if self.path.startswith("/api/v1/") else "track_push_event_legacy"


class PushEventsView(TrackV1View):
    """Legacy push metrics (`POST /push/events`, also under /api/v1)."""

    schema = ApiSchema(PushEventsSchema)  # served at two paths, one operation id each

    @extend_schema(tags=["track_v1"], request={"application/json": doc.PushEvent}, responses=ACCEPTED)
    def post(self, request):
        return self.accepted([metrics.v1_push_event(request.data, self.now())])
