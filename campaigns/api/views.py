"""App API (/v1, Bearer app key) for message content: transactional messages, snippets, layouts,
and template previews.

Customer.io's shapes where it has them: `{"messages": [...]}` / `{"message": {...}}` for
transactional messages, `GET|PUT /v1/snippets` (list, upsert by name) and
`DELETE /v1/snippets/{name}`. Create and update accept the object itself or wrapped in its
envelope; PUT and PATCH both change only the fields given. Reads need the `read` scope
(previews too: they save nothing), writes `write`. Another workspace's row is a 404; a template
that does not parse is a 400 naming the field (`body`, `payload.title`).
"""

from django.core.exceptions import ValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from accounts.models import AppScope
from campaigns import services, transactional
from channels.content import services as content_services
from channels.content import rendering
from campaigns.api import openapi as doc
from campaigns.api import serializers as s
from campaigns.models import TransactionalMessage
from channels.content.models import Layout, Snippet
from accounts.api.base import WorkspaceAPIView, WorkspaceViewSet
from profiles import selectors as people
from core.api.schema import error_responses
from core.errors import InvalidFields, InvalidInput


class ContentErrors:
    """Content services name model fields (`from_address`) and template fields; the API names them
    as it accepts them (`from`). Translated here; the project's one exception handler answers."""

    envelope: str | None = None

    def handle_exception(self, exc):
        return super().handle_exception(api_error(exc))


def api_error(exc: Exception) -> Exception:
    if isinstance(exc, ValidationError):
        if not hasattr(exc, "error_dict"):
            return InvalidFields([{"field": None, "message": message} for message in exc.messages])
        return InvalidFields([{"field": s.api_field(name), "message": message}
                              for name, errors in exc.message_dict.items() for message in errors])
    if isinstance(exc, rendering.RenderError):
        return InvalidInput(s.api_field(exc.field), exc.describe(with_field=False))
    return exc


# --- transactional messages ------------------------------------------------------------------------

class TransactionalViewSet(ContentErrors, WorkspaceViewSet):
    model = TransactionalMessage
    pagination_class = None  # lists answer every row, in their envelope

    def safely_get_queryset(self, queryset):
        return queryset.select_related("topic", "content").order_by("pk")

    @extend_schema(operation_id="transactional_list", responses={200: doc.TransactionalMessageList})
    def list(self, request):
        return Response({"messages": [s.transactional_json(m) for m in self.get_queryset()]})

    @extend_schema(operation_id="transactional_create", request=doc.TransactionalMessageCreateBody,
                   responses={201: doc.TransactionalMessageResponse})
    def create(self, request):
        fields = s.clean_transactional(self.workspace, request.data, partial=False)
        message = services.create_transactional_message(workspace=self.workspace, **fields)
        return Response({"message": s.transactional_json(message)}, status=status.HTTP_201_CREATED)

    @extend_schema(operation_id="transactional_get", responses={200: doc.TransactionalMessageResponse})
    def retrieve(self, request, pk):
        return Response({"message": s.transactional_json(self.get_object())})

    @extend_schema(methods=["PUT"], operation_id="transactional_replace", request=doc.TransactionalMessageUpdateBody,
                   responses={200: doc.TransactionalMessageResponse},
                   description="As PATCH: only the fields given change.")
    @extend_schema(methods=["PATCH"], operation_id="transactional_update", request=doc.TransactionalMessageUpdateBody,
                   responses={200: doc.TransactionalMessageResponse})
    def partial_update(self, request, pk):
        message = self.get_object()
        fields = s.clean_transactional(self.workspace, request.data, partial=True)
        message = services.update_transactional_message(message=message, **fields)
        return Response({"message": s.transactional_json(message)})

    @extend_schema(operation_id="transactional_delete", responses={204: None})
    def destroy(self, request, pk):
        services.delete_transactional_message(message=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


def preview_context(workspace, data) -> dict:
    ref = s.clean_person_ref(data)
    profile = None
    if ref is not None:
        profile = people.find_person(workspace, *ref)
        if profile is None:
            raise NotFound("Customer not found.")
    if "trigger" in data and "message_data" in data:
        raise InvalidInput("message_data", "give trigger or message_data, not both")
    trigger = s.clean_object(data, "trigger" if "trigger" in data else "message_data")
    return {"profile": profile, "event": s.clean_object(data, "event"), "trigger": trigger}


class TransactionalPreviewView(ContentErrors, WorkspaceAPIView):
    required_scopes = {"POST": AppScope.READ}  # renders, saves nothing

    @extend_schema(operation_id="transactional_preview", request=doc.TransactionalPreviewBody,
                   responses={200: doc.Rendered})
    def post(self, request, pk):
        """Render the saved message for a person of the workspace with sample `event`/`trigger` data."""
        message = TransactionalMessage.objects.filter(workspace=self.workspace, pk=pk).select_related(
            "content__layout").first()
        if message is None:
            raise NotFound("Transactional message not found.")
        data = s.unwrap(request.data, "preview")
        rendered = rendering.preview(workspace=self.workspace, channel=message.channel,
                                     message_content=message.content, about=transactional.about(message),
                                     **preview_context(self.workspace, data))
        return Response(s.rendered_json(rendered))


class TemplatePreviewView(ContentErrors, WorkspaceAPIView):
    required_scopes = {"POST": AppScope.READ}  # renders, saves nothing

    @extend_schema(operation_id="templates_preview", request=doc.TemplatePreviewBody,
                   responses={200: doc.Rendered, **error_responses(404)})
    def post(self, request):
        """Render inline content (`channel`, `subject`, `body`, ..., `layout`, `payload`) for a person."""
        data = s.unwrap(request.data, "preview")
        inline = s.clean_inline_content(self.workspace, data)
        context = preview_context(self.workspace, data)
        rendered = rendering.preview(workspace=self.workspace, **inline, **context)
        return Response(s.rendered_json(rendered))


# --- snippets --------------------------------------------------------------------------------------

class SnippetViewSet(ContentErrors, WorkspaceViewSet):
    model = Snippet
    pagination_class = None  # lists answer every row, in their envelope
    lookup_field = "name"

    def safely_get_queryset(self, queryset):
        return queryset.order_by("name")

    @extend_schema(operation_id="snippets_list", responses={200: doc.SnippetList})
    def list(self, request):
        return Response({"snippets": [s.snippet_json(snippet) for snippet in self.get_queryset()]})

    @extend_schema(operation_id="snippets_upsert", request=doc.SnippetBody,
                   responses={200: doc.SnippetResponse, 201: doc.SnippetResponse})
    def upsert(self, request):
        """Create the snippet `name`, or replace its value (Customer.io's PUT /v1/snippets)."""
        fields = s.clean_snippet(request.data)
        snippet, created = content_services.upsert_snippet(workspace=self.workspace, **fields)
        return Response({"snippet": s.snippet_json(snippet)},
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(operation_id="snippets_get", responses={200: doc.SnippetResponse})
    def retrieve(self, request, name):
        return Response({"snippet": s.snippet_json(self.get_object())})

    @extend_schema(operation_id="snippets_delete", responses={204: None})
    def destroy(self, request, name):
        content_services.delete_snippet(snippet=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- layouts ---------------------------------------------------------------------------------------

class LayoutViewSet(ContentErrors, WorkspaceViewSet):
    model = Layout
    pagination_class = None  # lists answer every row, in their envelope

    def safely_get_queryset(self, queryset):
        return queryset.order_by("pk")

    @extend_schema(operation_id="layouts_list", responses={200: doc.LayoutList})
    def list(self, request):
        return Response({"layouts": [s.layout_json(layout) for layout in self.get_queryset()]})

    @extend_schema(operation_id="layouts_create", request=doc.LayoutCreateBody, responses={201: doc.LayoutResponse})
    def create(self, request):
        layout = content_services.create_layout(workspace=self.workspace, **s.clean_layout(request.data, partial=False))
        return Response({"layout": s.layout_json(layout)}, status=status.HTTP_201_CREATED)

    @extend_schema(operation_id="layouts_get", responses={200: doc.LayoutResponse})
    def retrieve(self, request, pk):
        return Response({"layout": s.layout_json(self.get_object())})

    @extend_schema(methods=["PUT"], operation_id="layouts_replace", request=doc.LayoutUpdateBody,
                   responses={200: doc.LayoutResponse}, description="As PATCH: only the fields given change.")
    @extend_schema(methods=["PATCH"], operation_id="layouts_update", request=doc.LayoutUpdateBody,
                   responses={200: doc.LayoutResponse})
    def partial_update(self, request, pk):
        layout = self.get_object()
        layout = content_services.update_layout(layout=layout, **s.clean_layout(request.data, partial=True))
        return Response({"layout": s.layout_json(layout)})

    @extend_schema(operation_id="layouts_delete", responses={204: None, **error_responses(409)})
    def destroy(self, request, pk):
        content_services.delete_layout(layout=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
