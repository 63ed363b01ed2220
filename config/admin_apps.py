from django.contrib.admin.apps import AdminConfig


class UlakAdminConfig(AdminConfig):
    """The Django admin with Ulak's site (config/admin_site.py): the top layer composes the console."""

    default_site = "config.admin_site.UlakAdminSite"
