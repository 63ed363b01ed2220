"""Compliance admin pages, one module per area."""

from compliance import admin_audit, admin_deletion, admin_export  # noqa: F401  (registers them)
