from django.contrib.admin.apps import AdminConfig


class UlakAdminConfig(AdminConfig):
    default_site = "core.admin_site.UlakAdminSite"
