"""What channels shows on the person page (profiles/person_sections.py): the person's deliveries,
their subscription preferences and channel suppressions, and the consent ledger.

Registered by ChannelsConfig.ready(). Each section reads a fixed number of queries on the
person's (workspace, profile, ...) indexes, shows at most a page of rows, and links to the
changelist filtered to the person for the rest.
"""

from profiles.person_sections import changelist_url, register_person_section

from channels.models import ConsentRecord, Delivery, SubscriptionPreference, Suppression

DELIVERIES = 20
PREFERENCES = 50
SUPPRESSIONS = 20
CONSENT_RECORDS = 20


def deliveries_section(request, person):
    """The person's newest deliveries with their status (one query on delivery_ws_profile)."""
    rows = list(
        Delivery.objects.for_workspace(request.workspace).filter(profile=person)
        .select_related("channel_config")
        .only("public_id", "channel", "status", "failure_reason", "source", "source_id", "recipient", "subject",
              "created_at", "sent_at", "channel_config__name")
        .order_by("-created_at", "-pk")[: DELIVERIES + 1]
    )
    return "admin/channels/person/deliveries.html", {
        "deliveries": rows[:DELIVERIES], "more": len(rows) > DELIVERIES, "shown": DELIVERIES,
        "all_url": changelist_url(Delivery, profile__id__exact=person.pk),
    }


def subscriptions_section(request, person):
    """The person's subscription preferences (per channel and topic) and the channel suppressions
    linked to them (two queries: preference_unique and suppression_ws_profile lead with the
    workspace and person)."""
    preferences = list(
        SubscriptionPreference.objects.for_workspace(request.workspace).filter(profile=person)
        .select_related("topic").order_by("channel", "topic__name", "pk")[: PREFERENCES + 1]
    )
    suppressions = list(
        Suppression.objects.for_workspace(request.workspace).filter(profile=person)
        .order_by("-pk")[: SUPPRESSIONS + 1]
    )
    return "admin/channels/person/subscriptions.html", {
        "person": person,
        "preferences": preferences[:PREFERENCES], "more_preferences": len(preferences) > PREFERENCES,
        "suppressions": suppressions[:SUPPRESSIONS], "more_suppressions": len(suppressions) > SUPPRESSIONS,
        "suppressions_url": changelist_url(Suppression, profile__id__exact=person.pk),
    }


def consent_section(request, person):
    """The person's newest consent ledger entries (one query on consent_ws_profile)."""
    rows = list(
        ConsentRecord.objects.for_workspace(request.workspace).filter(profile=person)
        .only("channel", "topic_key", "action", "source", "created_at")
        .order_by("-created_at", "-pk")[: CONSENT_RECORDS + 1]
    )
    return "admin/channels/person/consent.html", {
        "records": rows[:CONSENT_RECORDS], "more": len(rows) > CONSENT_RECORDS, "shown": CONSENT_RECORDS,
        "all_url": changelist_url(ConsentRecord, profile__id__exact=person.pk),
    }


def register() -> None:
    register_person_section("deliveries", "Messages (deliveries)", "view_campaigns", 40, deliveries_section)
    register_person_section("subscriptions", "Subscriptions", "view_people", 60, subscriptions_section)
    register_person_section("consent", "Consent ledger", "view_audit_log", 70, consent_section)
