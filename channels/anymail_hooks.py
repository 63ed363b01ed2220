"""ESP tracking webhooks through anymail, one URL per channel configuration:

    POST /hooks/anymail/<config public_id>/<esp>/tracking/

The configuration's own secrets authenticate the call: `webhook_secret` ("user:password", HTTP
basic auth, every ESP) and/or the ESP's signing secret (Mailgun `webhook_signing_key`, MailerSend
and Resend `signing_secret`, Mandrill and Postal `webhook_key`, Mailtrap `tracking_secret`). A
configuration with neither refuses every call. A bad call answers 403 and stores nothing.

Anymail's view parses the ESP's payload and sends its `tracking` signal; our receiver turns each
normalised event into delivery feedback within the configuration's workspace, matching the
delivery by `provider_message_id` (anymail's message id, set when the message was sent).
"""

from __future__ import annotations

import hashlib
import json
import logging
from contextvars import ContextVar

from anymail.exceptions import AnymailConfigurationError, AnymailError, AnymailWebhookValidationFailure
from anymail.signals import EventType, RejectReason, tracking
from django.db import transaction
from django.http import HttpResponse, HttpResponseForbidden, HttpResponseNotFound
from django.views.decorators.csrf import csrf_exempt

from channels.configs import read_secrets
from channels.consent import suppress
from channels.feedback import record_delivery_event
from channels.models import ChannelConfig, ChannelType, ConsentSource, Delivery, DeliveryEvent, ProviderKind, Suppression
from channels.providers.email import ESPS, WEBHOOK_SECRET
from core.context import Actor, acting_as, request_ip, workspace_scope

logger = logging.getLogger(__name__)

# The configuration whose webhook is being handled: set around anymail's view so the signal
# receiver knows the workspace (anymail's signal carries only the event and the ESP name).
_config: ContextVar[ChannelConfig | None] = ContextVar("ulak_anymail_config", default=None)


def webhook_config(public_id: str, esp: str) -> ChannelConfig | None:
    config = (ChannelConfig.unscoped.select_related("workspace")
              .filter(public_id=public_id, type=ChannelType.EMAIL, provider=ProviderKind.ANYMAIL, active=True).first())
    if config is None or (config.settings or {}).get("esp") != esp or ESPS[esp].webhook is None:
        return None
    return config


def view_kwargs(config: ChannelConfig) -> dict | None:
    """Per-configuration settings for anymail's view, or None when nothing would authenticate it."""
    esp = ESPS[config.settings["esp"]]
    secrets = read_secrets(config)
    kwargs = {name: secrets[name] for name in esp.webhook_secrets if secrets.get(name)}
    if secrets.get(WEBHOOK_SECRET):
        kwargs["webhook_secret"] = [secrets[WEBHOOK_SECRET]]
    if not kwargs:
        return None
    if esp.module == "amazon_ses":
        kwargs.update(_sns_confirmation_kwargs(secrets))
    return kwargs


def _sns_confirmation_kwargs(secrets: dict) -> dict:
    """Anymail confirms an SNS subscription by calling AWS; with the configuration's own keys only,
    never boto3's default credentials (the installation's environment or instance role)."""
    keys = ("aws_access_key_id", "aws_secret_access_key")
    if not all(isinstance(secrets.get(key), str) and secrets[key] for key in keys):
        return {"auto_confirm_sns_subscriptions": False}
    return {"auto_confirm_sns_subscriptions": True, "session_params": {key: secrets[key] for key in keys}}


@csrf_exempt
def tracking_webhook(request, public_id: str, esp: str):
    if esp not in ESPS:
        return HttpResponseNotFound()
    config = webhook_config(public_id, esp)
    if config is None:
        return HttpResponseNotFound()
    kwargs = view_kwargs(config)
    if kwargs is None:
        logger.warning("anymail webhook refused: the configuration has no webhook secret",
                       extra={"config": config.public_id})
        return HttpResponseForbidden()
    view_class = ESPS[esp].webhook_class()
    token = _config.set(config)
    try:
        view = view_class(**kwargs)
        view.setup(request)
        with acting_as(Actor(source="system", remote_addr=request_ip(request))), transaction.atomic():
            return view.dispatch(request)
    except AnymailWebhookValidationFailure:
        return HttpResponseForbidden()
    except AnymailConfigurationError as exc:  # a signing secret the ESP's view requires is missing
        logger.warning("anymail webhook refused: %s", exc, extra={"config": config.public_id})
        return HttpResponseForbidden()
    except (AnymailError, ValueError) as exc:  # not JSON, not this ESP's format
        logger.info("anymail webhook payload not understood: %s", exc, extra={"config": config.public_id})
        return HttpResponse(status=400)
    finally:
        _config.reset(token)


def _on_tracking(sender, event, esp_name, **kwargs):
    config = _config.get()
    if config is None:
        return  # an anymail webhook mounted elsewhere; not ours
    record_esp_event(config, event)


tracking.connect(_on_tracking, dispatch_uid="ulak.channels.anymail_tracking")


# --- from an anymail event to delivery feedback -------------------------------------------------------

SOFT_BOUNCE_TYPES = {
    # Postmark bounce types anymail also reports as "bounced"
    "postmark": {"SoftBounce", "Transient", "DnsError", "AutoResponder", "AddressChange", "VirusNotification",
                 "ChallengeVerification", "OpenRelayTest", "Unknown"},
}


def is_hard_bounce(config: ChannelConfig, event) -> bool:
    raw = event.esp_event if isinstance(event.esp_event, dict) else {}
    esp = config.settings.get("esp")
    if esp == "postmark":
        return raw.get("Type") not in SOFT_BOUNCE_TYPES["postmark"]
    if esp == "sendgrid":
        return raw.get("type", "bounce") != "blocked"  # "blocked" is SendGrid's soft bounce
    if esp == "brevo":
        return raw.get("event") != "soft_bounce"
    return True  # anymail reports temporary failures as "deferred"


def _reason(event) -> str:
    return str(event.description or event.mta_response or event.reject_reason or event.event_type)[:1000]


def find_delivery(config: ChannelConfig, event) -> Delivery | None:
    """By the ESP's message id, else by the delivery id sent along as metadata; among the deliveries
    sent through this configuration only (its webhook secret authenticated the call). Locked, so a
    retry arriving at the same time waits and then sees the event recorded."""
    deliveries = Delivery.objects.for_workspace(config.workspace_id).select_for_update(of=("self",)).select_related(
        "workspace", "profile", "topic").filter(channel_config_id=config.pk,
                                                 channel=ChannelType.EMAIL)
    delivery = None
    if event.message_id:
        delivery = deliveries.filter(provider_message_id=str(event.message_id)).first()
    metadata = event.metadata if isinstance(event.metadata, dict) else {}
    if delivery is None and isinstance(metadata.get("ulak_delivery_id"), str):
        delivery = deliveries.filter(public_id=metadata["ulak_delivery_id"]).first()
    return delivery


# The delivery event each anymail event type is recorded as (the others are not recorded).
RECORDED_KIND = {EventType.DELIVERED: "delivered", EventType.OPENED: "opened", EventType.CLICKED: "clicked",
                 EventType.DEFERRED: "deferred", EventType.BOUNCED: "bounced", EventType.COMPLAINED: "complained",
                 EventType.UNSUBSCRIBED: "unsubscribed", EventType.REJECTED: "failed", EventType.FAILED: "failed"}
# Kinds that happen more than once per message (a soft bounce, then a hard one); without an ESP
# event id, a retry of one of them is recognised by its identical payload.
REPEATABLE_KINDS = {"opened", "clicked", "deferred", "bounced"}


def event_fingerprint(event) -> str | None:
    """A hash of the ESP's raw event: what identifies a retried call when the ESP gives no event id
    (Brevo, Mailjet)."""
    if event.esp_event is None:
        return None
    try:
        raw = json.dumps(event.esp_event, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return None
    return hashlib.sha256(raw.encode()).hexdigest()


def already_recorded(delivery: Delivery, event, kind: str, fingerprint: str | None) -> bool:
    """ESPs retry webhooks. An event they identify is recorded once; without an id, a
    non-repeatable kind (delivered, complained, failed, unsubscribed) once per delivery and a
    repeatable one (opens, clicks, deferrals, bounces) once per identical payload."""
    events = DeliveryEvent.objects.for_workspace(delivery.workspace_id).filter(delivery=delivery)
    if event.event_id:
        return events.filter(data__esp_event_id=str(event.event_id)).exists()
    if kind not in REPEATABLE_KINDS:
        return events.filter(kind=kind).exists()
    return fingerprint is not None and events.filter(data__esp_event_hash=fingerprint).exists()


def record_esp_event(config: ChannelConfig, event) -> str | None:
    """Record one normalised anymail event; returns the delivery event kind recorded, if any."""
    kind = RECORDED_KIND.get(event.event_type)
    if kind is None:
        return None  # queued, sent, autoresponded, subscribed, unknown: nothing to record
    with transaction.atomic():
        delivery = find_delivery(config, event)
        fingerprint = None if event.event_id else event_fingerprint(event)
        if delivery is None or already_recorded(delivery, event, kind, fingerprint):
            return None
        data = {"esp": config.settings.get("esp")}
        if event.event_id:
            data["esp_event_id"] = str(event.event_id)
        elif fingerprint:
            data["esp_event_hash"] = fingerprint
        with workspace_scope(config.workspace):
            return _apply(config, delivery, event, data, event.timestamp)


def _apply(config, delivery, event, data, at) -> str | None:
    kind = event.event_type
    workspace = config.workspace
    if kind == EventType.DELIVERED:
        record_delivery_event(delivery, "delivered", at=at, data=data)
        return "delivered"
    if kind in (EventType.OPENED, EventType.CLICKED):
        if kind == EventType.CLICKED and event.click_url:
            data["href"] = event.click_url
        record_delivery_event(delivery, kind, at=at, data=data)
        return kind
    if kind == EventType.DEFERRED:
        record_delivery_event(delivery, "deferred", at=at, data={**data, "reason": _reason(event)})
        return "deferred"
    if kind == EventType.BOUNCED:
        hard = is_hard_bounce(config, event)
        if hard:
            suppress(workspace, channel=ChannelType.EMAIL, address=delivery.recipient,
                     reason=Suppression.Reason.HARD_BOUNCE, profile=delivery.profile, note=_reason(event))
        record_delivery_event(delivery, "bounced", at=at, data={**data, "reason": _reason(event), "hard": hard})
        return "bounced"
    if kind == EventType.COMPLAINED:
        suppress(workspace, channel=ChannelType.EMAIL, address=delivery.recipient,
                 reason=Suppression.Reason.COMPLAINT, profile=delivery.profile, note=_reason(event))
        record_delivery_event(delivery, "complained", at=at, data=data)
        return "complained"
    if kind == EventType.UNSUBSCRIBED:
        from channels.tracking import unsubscribe_from_delivery

        unsubscribe_from_delivery(delivery, evidence={"esp": data["esp"], "esp_event_id": data.get("esp_event_id")},
                                  source=ConsentSource.PROVIDER)
        return "unsubscribed"
    if kind in (EventType.REJECTED, EventType.FAILED):
        _suppress_rejected(workspace, delivery, event)
        record_delivery_event(delivery, "failed", at=at, data={**data, "reason": _reason(event)})
        return "failed"
    return None  # queued, sent, autoresponded, subscribed, unknown: nothing to record


def _suppress_rejected(workspace, delivery, event) -> None:
    """An ESP that refuses an address because of an earlier bounce or complaint: mirror it."""
    reason = {RejectReason.INVALID: Suppression.Reason.INVALID, RejectReason.BOUNCED: Suppression.Reason.HARD_BOUNCE,
              RejectReason.SPAM: Suppression.Reason.COMPLAINT}.get(event.reject_reason)
    if reason is not None:
        suppress(workspace, channel=ChannelType.EMAIL, address=delivery.recipient, reason=reason,
                 profile=delivery.profile, note=_reason(event))
