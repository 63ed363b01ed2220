"""The inbound-webhook trigger: `POST /hooks/campaigns/<token>` with a JSON body starts a run of
the campaign whose trigger is `{"type": "webhook"}` (docs/journeys.md). The URL's token is its
credential: 32 random bytes, unique across workspaces, shown on the campaign; keep it secret."""

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from rest_framework.exceptions import ParseError

from campaigns.journeys.triggers import enter_from_webhook, webhook_campaign
from core.api.exceptions import error_body
from core.api.parsers import loads
from core.context import workspace_scope
from core.errors import ApiError


def _error(message: str, status: int, field: str | None = None) -> JsonResponse:
    return JsonResponse(error_body([{"field": field, "message": message}]), status=status)


@csrf_exempt
@require_POST
def campaign_webhook(request, token: str):
    campaign = webhook_campaign(token)
    if campaign is None or campaign.trigger.get("type") != "webhook":
        return _error("Not found.", 404)
    if len(request.body) > settings.ULAK_MAX_MESSAGE_BYTES:
        return _error(f"the body is larger than {settings.ULAK_MAX_MESSAGE_BYTES} bytes", 413)
    key = request.headers.get("Idempotency-Key", "")
    if len(key) > 100:
        return _error("at most 100 characters", 400, "Idempotency-Key")
    try:
        body = loads(request.body or b"{}")
        with workspace_scope(campaign.workspace):
            run, created = enter_from_webhook(campaign=campaign, body=body, idempotency_key=key)
    except ParseError as exc:
        return _error(str(exc.detail), 400)
    except ApiError as exc:
        return JsonResponse(error_body(exc.errors()), status=exc.status)
    return JsonResponse({"id": run.pk if run else None, "entered": created}, status=202 if created else 200)
