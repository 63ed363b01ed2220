"""API permissions. They fail closed: a view that names no scope cannot be reached."""

from rest_framework.permissions import BasePermission


class DenyAll(BasePermission):
    """Project default, so a view that forgets its permission classes answers nothing."""

    def has_permission(self, request, view):
        return False
