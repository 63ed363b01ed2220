"""The console's admin site: login for workspace members (throttled by django-axes, see
docs/security.md), the workspace switcher, and the pages of the layers below composed into one site
(the top layer may import them all)."""

from functools import partial

from axes.backends import AxesStandaloneBackend
from axes.helpers import get_cool_off
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.http import HttpResponseNotAllowed, HttpResponsePermanentRedirect, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, re_path, reverse, reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme

from accounts.middleware import SESSION_KEY
from accounts.models import Membership
from campaigns.admin_broadcast_compose import compose_urls
from compliance.admin_export import export_person_urls, with_export_link
from config.dashboard import dashboard_context
from config.navigation import task_sections
from config.reports import delivery_report_view
from core.audit import record_action


# Models that moved to another app when the layers were made one-way (docs/architecture.md): the
# admin pages of their old app label redirect, so bookmarks and links in mail keep working.
MOVED_MODEL_PAGES = {
    "compliance/auditentry": "core/auditentry",
    "compliance/suppressedidentifier": "profiles/suppressedidentifier",
    "campaigns/snippet": "channels/snippet",
    "campaigns/layout": "channels/layout",
}


class LoginThrottleBackend(AxesStandaloneBackend):
    """First of AUTHENTICATION_BACKENDS: refuses every login attempt while the account or the client
    address is locked out (django-axes counts the failures; settings.py sets the limits).

    Every login path must pass the request to `authenticate()`, as the console's login form does
    (and as any future password reset must). A call without one (the test client's `login()`, a
    shell) is not an attempt from an address and is not throttled, as django-axes would instead
    refuse it with an error.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)


def login_throttle_username(request, credentials=None) -> str | None:
    """The name a login attempt is counted under (AXES_USERNAME_CALLABLE): case-folded like the
    email logins match case-insensitively, so `Ada@X` and `ada@x` share one count."""
    # accounts.admin registers pages on this site: import it once the site exists.
    from accounts.lockouts import throttled_username

    source = credentials if credentials is not None else getattr(request, "POST", {})
    return throttled_username(source.get(settings.AXES_USERNAME_FORM_FIELD))


def login_locked_out(request, original_response=None, credentials=None):
    """The answer to a login attempt refused by the throttle (AXES_LOCKOUT_CALLABLE): 429 with a
    page that says what happened without naming the account, the address or the attempted name."""
    cool_off = get_cool_off(request)
    context = {
        **admin.site.each_context(request),
        "title": "Too many failed logins",
        "cool_off_minutes": int(cool_off.total_seconds() // 60) if cool_off else None,
    }
    response = TemplateResponse(request, "admin/ulak/login_locked_out.html", context, status=429)
    if cool_off:
        response["Retry-After"] = str(int(cool_off.total_seconds()))
    return response.render()


class MemberAuthenticationForm(AuthenticationForm):
    """Console login for workspace members (Django's admin form would demand `is_staff`)."""

    def confirm_login_allowed(self, user):
        super().confirm_login_allowed(user)
        if not Membership.unscoped.filter(user=user).exists():
            # Django sends no failure signal for a right password refused here; audit it ourselves.
            record_action(target=type(user), action="login_failed", details={"reason": "no_workspace"})
            raise ValidationError("This account is not a member of any workspace.", code="no_workspace")


class UlakAdminSite(admin.AdminSite):
    login_form = MemberAuthenticationForm
    site_header = "Ulak"
    site_title = "Ulak console"
    index_title = "Dashboard"
    index_template = "admin/ulak/dashboard.html"
    site_url = reverse_lazy("admin:index")  # "View site" is the dashboard: the console is the site

    def has_permission(self, request):
        # Any active user with a membership may enter; what they see is decided per workspace role.
        return bool(request.user.is_active and getattr(request, "workspace", None) is not None)

    def get_urls(self):
        urls = [path("switch-workspace/", self.admin_view(self.switch_workspace), name="switch_workspace"),
                path("reports/deliveries/", self.admin_view(self.delivery_report), name="delivery_report"),
                *[re_path(rf"^{old}/(?P<rest>.*)$", partial(self.moved_model_page, new=new))
                  for old, new in MOVED_MODEL_PAGES.items()],
                *export_person_urls(self), *compose_urls(self)]
        return urls + super().get_urls()

    def get_app_list(self, request, app_label=None):
        # The index and every page's sidebar: the pages grouped by task (config/navigation.py). One
        # app's page (/admin/<app_label>/, the breadcrumbs' link) keeps Django's list of that app.
        app_list = (task_sections(self._build_app_dict(request), request) if app_label is None
                    else super().get_app_list(request, app_label))
        return with_export_link(request, app_list, app_label)

    def index(self, request, extra_context=None):
        return super().index(request, {**dashboard_context(request), "title": "Dashboard", **(extra_context or {})})

    def delivery_report(self, request):
        return delivery_report_view(request, site_context=self.each_context(request))

    @staticmethod
    def moved_model_page(request, rest, *, new):
        query = request.META.get("QUERY_STRING", "")
        return HttpResponsePermanentRedirect(f"{reverse('admin:index')}{new}/{rest}" + (f"?{query}" if query else ""))

    def switch_workspace(self, request):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        wanted = request.POST.get("workspace")
        for membership in request.memberships:
            if str(membership.workspace_id) == wanted:
                request.session[SESSION_KEY] = membership.workspace_id
                messages.info(request, f"Now working in {membership.workspace.name}.")
                break
        else:
            messages.error(request, "You are not a member of that workspace.")
        target = request.POST.get("next") or reverse("admin:index")
        if not url_has_allowed_host_and_scheme(target, {request.get_host()}):
            target = reverse("admin:index")
        return HttpResponseRedirect(target)
