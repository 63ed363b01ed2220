"""The console's navigation by task: the admin pages grouped under plain-word sections (a
marketer's words, not the apps' names), in the sidebar of every page. Each entry names a
registered admin page by `app_label.model_name`, the label it is shown under, and optionally a
query string (a filtered view of the same page). Permissions are the pages' own: an entry the user
may not see is left out, and a section left empty is not shown. A registered page no section names
is listed under "Other" (and `tests/test_console_navigation.py` fails, so it gets a home)."""

from django.urls import reverse

from core.admin import has_perm

# Console pages that are not a model's admin: name → (URL name, the permission that shows them).
PAGES = {
    "page.delivery_report": ("admin:delivery_report", "view_campaigns"),
    "page.broadcast_compose": ("admin:broadcast_compose", "change_campaigns"),
}

SECTIONS: list[tuple[str, str, list[tuple[str, str, str]]]] = [
    ("people", "People", [
        ("profiles.profile", "People", ""),
        ("profiles.peopleimport", "Imports", ""),
        ("profiles.identity", "Identities", ""),
        ("profiles.device", "Devices", ""),
        ("channels.consentrecord", "Consent ledger", ""),
        ("channels.suppression", "Channel suppressions", ""),
    ]),
    ("segments", "Segments", [("profiles.segment", "Segments", "")]),
    ("campaigns", "Campaigns", [
        ("campaigns.campaign", "Campaigns", "?type__exact=triggered"),
        ("campaigns.journey", "Journeys", ""),
        ("page.broadcast_compose", "Compose a broadcast", ""),
        ("campaigns.deliveryrules", "Delivery rules", ""),
    ]),
    ("broadcasts", "Broadcasts", [("campaigns.campaign", "Broadcasts", "?type__exact=broadcast")]),
    ("messages", "Messages", [
        ("campaigns.transactionalmessage", "Transactional", ""),
        ("channels.layout", "Layouts", ""),
        ("channels.snippet", "Snippets", ""),
    ]),
    ("deliveries", "Deliveries", [
        ("channels.delivery", "Deliveries", ""),
        ("page.delivery_report", "Reports", ""),
        ("channels.inboundmessage", "Inbound messages", ""),
        ("channels.reportingwebhookcall", "Reporting webhook calls", ""),
        ("channels.demomessage", "Demo inbox", ""),
    ]),
    ("data", "Data", [
        ("profiles.event", "Events", ""),
        ("profiles.customobject", "Objects", ""),
        ("profiles.objecttype", "Object types", ""),
        ("profiles.ingestdeadletter", "Ingest dead letters", ""),
        ("profiles.datasource", "Data sources", ""),
    ]),
    ("settings", "Settings", [
        ("channels.channelconfig", "Channels", ""),
        ("channels.subscriptiontopic", "Topics", ""),
        ("channels.keywordrule", "Keywords", ""),
        ("channels.reportingwebhook", "Reporting webhooks", ""),
        ("accounts.apikey", "API keys", ""),
        ("accounts.membership", "Members", ""),
        ("accounts.workspace", "Workspace", ""),
        ("django_celery_beat.periodictask", "Scheduled tasks", ""),
        ("django_celery_beat.crontabschedule", "Crontab schedules", ""),
        ("django_celery_beat.intervalschedule", "Interval schedules", ""),
        ("django_celery_beat.clockedschedule", "Clocked schedules", ""),
        ("django_celery_beat.solarschedule", "Solar schedules", ""),
    ]),
    # "compliance" keeps the app's label: the export page joins it (compliance.admin_export).
    ("compliance", "Compliance", [
        ("compliance.deletionrecord", "Deletion records", ""),
        ("core.auditentry", "Audit log", ""),
        ("profiles.suppressedidentifier", "Deleted people's identifiers", ""),
    ]),
]


def named_pages() -> set[str]:
    return {page for _, _, entries in SECTIONS for page, _, _ in entries if page not in PAGES}


def task_sections(app_dict: dict, request) -> list[dict]:
    """The admin's app dictionary (`AdminSite._build_app_dict`: what the user may see, per app)
    regrouped into SECTIONS, with the PAGES the user may open, in the shape the admin's app list
    templates read."""
    pages = {f"{app_label}.{model['object_name'].lower()}": model
             for app_label, app in app_dict.items() for model in app["models"]}
    for name, (url_name, permission) in PAGES.items():
        if has_perm(request, permission):
            pages[name] = {"name": name, "object_name": name.replace(".", "_"), "admin_url": reverse(url_name),
                           "add_url": None, "view_only": True, "perms": {"view": True}}
    sections = []
    for key, name, entries in SECTIONS:
        models = []
        for page, label, query in entries:
            model = pages.get(page)
            if model is None:
                continue
            models.append({**model, "name": label,
                           "admin_url": f"{model['admin_url']}{query}" if model["admin_url"] else None,
                           "add_url": None if query else model["add_url"]})
        if models:
            sections.append({"name": name, "app_label": key, "app_url": models[0]["admin_url"] or reverse("admin:index"),
                             "has_module_perms": True, "models": models})
    named = named_pages() | set(PAGES)
    others = [model for page, model in sorted(pages.items()) if page not in named]
    if others:
        sections.append({"name": "Other", "app_label": "other", "app_url": others[0]["admin_url"],
                         "has_module_perms": True, "models": others})
    return sections
