"""Console page: export one person's data (DSAR) of the session's workspace as a JSON download.

Mounted by `UlakAdminSite.get_urls()` through `export_person_urls(site)` and listed on the admin
index through `with_export_link` (there is no model to hang a ModelAdmin on).
"""

from functools import partial

from django import forms
from django.core.exceptions import PermissionDenied
from django.http import StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.views.decorators.http import require_http_methods

from compliance import dsar
from core.admin import has_perm
from core.errors import InvalidInput

PERMISSION = "export_personal_data"
URL_NAME = "compliance_export_person"


class ExportPersonForm(forms.Form):
    id_type = forms.ChoiceField(
        label="Identifier", choices=[("id", "id"), ("email", "Email"), ("phone", "Phone"), ("cio_id", "cio_id")]
    )
    value = forms.CharField(max_length=254, help_text="Phone numbers in E.164, e.g. +905551234567.")


@require_http_methods(["GET", "POST"])
def export_person_view(request, site):
    if not has_perm(request, PERMISSION):
        raise PermissionDenied
    form = ExportPersonForm(request.POST if request.method == "POST" else None)
    status = 400 if form.is_bound else 200
    if form.is_valid():
        identifiers = {form.cleaned_data["id_type"]: form.cleaned_data["value"]}
        try:
            export = dsar.open_export(workspace=request.workspace, identifiers=identifiers)
        except InvalidInput as exc:
            form.add_error("value", exc.message)
        except dsar.PersonNotFound as exc:
            form.add_error("value", str(exc))
            status = 404  # another workspace's person looks exactly like nobody
        else:
            response = StreamingHttpResponse(export.chunks, content_type="application/json")
            response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
            response["Cache-Control"] = "no-store"
            return response
    context = {**site.each_context(request), "title": "Export a person's data", "form": form}
    return TemplateResponse(request, "admin/compliance/export_person.html", context, status=status)


def export_person_urls(site) -> list:
    view = site.admin_view(partial(export_person_view, site=site))
    return [path("compliance/export-person/", view, name=URL_NAME)]


def with_export_link(request, app_list: list[dict], app_label: str | None = None) -> list[dict]:
    """The admin index's app list with the export page under Compliance, for whoever may use it."""
    if not has_perm(request, PERMISSION) or app_label not in (None, "compliance"):
        return app_list
    url = reverse(f"admin:{URL_NAME}")
    entry = {"name": "Export a person's data", "object_name": "ExportPerson", "admin_url": url,
             "add_url": None, "view_only": True, "perms": {"view": True}}
    for app in app_list:
        if app["app_label"] == "compliance":
            app["models"].append(entry)
            return app_list
    try:
        app_url = reverse("admin:app_list", kwargs={"app_label": "compliance"})
    except NoReverseMatch:  # no compliance model admin registered
        app_url = url
    app = {"name": "Compliance", "app_label": "compliance", "app_url": app_url, "has_module_perms": True,
           "models": [entry]}
    return [*app_list, app]  # the console's sections keep their task order; Compliance comes last
