from django.contrib import admin, messages
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.http import url_has_allowed_host_and_scheme

from core.middleware import SESSION_KEY


class MemberAuthenticationForm(AuthenticationForm):
    """Console login for workspace members (Django's admin form would demand `is_staff`)."""

    def confirm_login_allowed(self, user):
        super().confirm_login_allowed(user)
        from accounts.models import Membership

        if not Membership.unscoped.filter(user=user).exists():
            from compliance.audit import record_action

            # Django sends no failure signal for a right password refused here; audit it ourselves.
            record_action(target=type(user), action="login_failed", details={"reason": "no_workspace"})
            raise ValidationError("This account is not a member of any workspace.", code="no_workspace")


class UlakAdminSite(admin.AdminSite):
    login_form = MemberAuthenticationForm
    site_header = "Ulak"
    site_title = "Ulak console"
    index_title = "Workspace"

    def has_permission(self, request):
        # Any active user with a membership may enter; what they see is decided per workspace role.
        return bool(request.user.is_active and getattr(request, "workspace", None) is not None)

    def get_urls(self):
        from compliance.admin_export import export_person_urls

        urls = [path("switch-workspace/", self.admin_view(self.switch_workspace), name="switch_workspace"),
                *export_person_urls(self)]
        return urls + super().get_urls()

    def get_app_list(self, request, app_label=None):
        from compliance.admin_export import with_export_link

        return with_export_link(request, super().get_app_list(request, app_label), app_label)

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
