"""OpenAPI descriptions of our authentication classes (drf-spectacular extensions)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class AppApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.AppApiKeyAuthentication"
    name = "AppApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "App API key (`Authorization: Bearer <key>`)"}


class TrackApiScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.TrackApiAuthentication"
    name = "TrackApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "basic", "description": "`site_id` as user, Track API key as password"}


class CdpWriteKeyScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.CdpWriteKeyAuthentication"
    name = "CdpWriteKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "basic", "description": "CDP write key as user, empty password"}
