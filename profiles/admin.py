from django.contrib import admin

from core.admin import ReadOnlyWorkspaceInline, WorkspaceScopedAdmin
from profiles.models import Device, Event, Identity, Profile


class PeopleAdmin(WorkspaceScopedAdmin):
    view_permission = "view_people"
    change_permission = "change_people"


class DeviceInline(ReadOnlyWorkspaceInline):
    model = Device
    view_permission = "view_people"
    fields = ["platform", "token", "last_used"]
    readonly_fields = fields


class IdentityInline(ReadOnlyWorkspaceInline):
    model = Identity
    view_permission = "view_people"
    fields = ["anonymous_id", "created_at"]
    readonly_fields = fields


@admin.register(Profile)
class ProfileAdmin(PeopleAdmin):
    list_display = ["__str__", "email", "phone", "unsubscribed", "suppressed", "created_at"]
    list_filter = ["unsubscribed", "suppressed"]
    search_fields = ["external_id", "email", "phone", "cio_id"]
    readonly_fields = ["cio_id", "created_at", "updated_at"]
    ordering = ["-pk"]
    inlines = [IdentityInline, DeviceInline]


@admin.register(Event)
class EventAdmin(PeopleAdmin):
    list_display = ["name", "type", "profile", "anonymous_id", "timestamp"]
    list_filter = ["type"]
    list_select_related = ["profile"]
    search_fields = ["name", "profile__external_id", "profile__email"]
    autocomplete_fields = ["profile"]
    date_hierarchy = "timestamp"
    show_full_result_count = False


@admin.register(Device)
class DeviceAdmin(PeopleAdmin):
    list_display = ["profile", "platform", "last_used"]
    list_select_related = ["profile"]
    autocomplete_fields = ["profile"]


@admin.register(Identity)
class IdentityAdmin(PeopleAdmin):
    list_display = ["anonymous_id", "profile", "created_at"]
    list_select_related = ["profile"]
    search_fields = ["anonymous_id"]
    autocomplete_fields = ["profile"]
