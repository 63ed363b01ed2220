"""Customer.io Track API v1, as the `customerio` client calls it. Success is 200 with `{}`."""

from accounts.authentication import TrackApiAuthentication
from profiles.api.ingest_base import IngestView
from profiles.ingest import metrics, track_v1


class TrackV1View(IngestView):
    authentication_classes = [TrackApiAuthentication]
    key_kind = "track"
    source = "track_v1"


class CustomerView(TrackV1View):
    def put(self, request, identifier):
        return self.accepted([track_v1.identify(identifier, request.data, self.now())])

    def delete(self, request, identifier):
        return self.accepted([track_v1.person_action(identifier, "delete")])


class CustomerEventsView(TrackV1View):
    def post(self, request, identifier):
        return self.accepted([track_v1.customer_event(identifier, request.data, self.now())])


class AnonymousEventsView(TrackV1View):
    def post(self, request):
        return self.accepted([track_v1.anonymous_event(request.data, self.now())])


class DevicesView(TrackV1View):
    def put(self, request, identifier):
        return self.accepted([track_v1.add_device(identifier, request.data)])


class DeviceView(TrackV1View):
    def delete(self, request, identifier, token):
        return self.accepted([track_v1.delete_device(identifier, token)])


class SuppressView(TrackV1View):
    action = "suppress"

    def post(self, request, identifier):
        return self.accepted([track_v1.person_action(identifier, self.action)])


class UnsuppressView(SuppressView):
    action = "unsuppress"


class MergeCustomersView(TrackV1View):
    def post(self, request):
        return self.accepted([track_v1.merge(request.data)])


class MetricsView(TrackV1View):
    """Delivery metrics reported by the client (`POST /api/v1/metrics`)."""

    def post(self, request):
        return self.accepted([metrics.v1_metric(request.data, self.now())])


class PushEventsView(TrackV1View):
    """Legacy push metrics (`POST /push/events`, also under /api/v1)."""

    def post(self, request):
        return self.accepted([metrics.v1_push_event(request.data, self.now())])
