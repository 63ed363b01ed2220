from rest_framework import serializers

from accounts.models import ApiKey, ApiKeyKind, AppScope, Workspace


class WorkspaceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Workspace
        fields = ["id", "name", "slug", "site_id", "time_zone", "event_retention_days", "created_at"]
        read_only_fields = ["id", "slug", "site_id", "created_at"]


class ApiKeySerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiKey
        fields = ["id", "kind", "name", "prefix", "scopes", "created_at", "last_used_at", "revoked_at", "replaced_by"]
        read_only_fields = fields


class ApiKeyCreateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ApiKeyKind.choices)
    name = serializers.CharField(max_length=120)
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=AppScope.choices), required=False, default=list)


class ApiKeyWithSecretSerializer(ApiKeySerializer):
    secret = serializers.CharField(read_only=True, help_text="Shown once; store it now.")
    site_id = serializers.CharField(read_only=True, source="workspace.site_id")

    class Meta(ApiKeySerializer.Meta):
        fields = ApiKeySerializer.Meta.fields + ["secret", "site_id"]
        read_only_fields = fields
