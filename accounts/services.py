"""Writes for workspaces, members and API keys. One function per change, each atomic."""

from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify
from guardian.models import UserObjectPermission

from accounts.models import ApiKey, ApiKeyKind, AppScope, Membership, User, Workspace
from accounts.grants import check_may_assign_roles, check_may_manage_key
from accounts.roles import Role, permissions_for
from accounts.tokens import hash_secret, new_secret
from core.audit import record_action


def api_key_cache_key(secret_hash: str) -> str:
    return f"apikey:{secret_hash}"


def _unique_slug(name: str) -> str:
    base = slugify(name)[:60] or "workspace"
    slug, n = base, 1
    while Workspace.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


def get_or_create_user(*, email: str, password: str | None = None, name: str = "") -> tuple[User, bool]:
    email = User.objects.normalize_email(email).strip().lower()
    user = User.objects.filter(email__iexact=email).first()
    if user is not None:
        return user, False
    return User.objects.create_user(email, password=password, name=name), True


def sync_workspace_permissions(*, user: User, workspace: Workspace, codenames: frozenset[str]) -> None:
    """Make the user's guardian grants on `workspace` exactly `codenames`."""
    content_type = ContentType.objects.get_for_model(Workspace)
    object_pk = str(workspace.pk)
    granted = UserObjectPermission.objects.filter(user=user, content_type=content_type, object_pk=object_pk)
    held = set(granted.values_list("permission__codename", flat=True))
    granted.exclude(permission__codename__in=codenames).delete()
    missing = codenames - held
    if missing:
        permissions = Permission.objects.filter(content_type=content_type, codename__in=missing)
        UserObjectPermission.objects.bulk_create(
            UserObjectPermission(user=user, permission=p, content_type=content_type, object_pk=object_pk)
            for p in permissions
        )


def _ensure_an_owner_remains(membership: Membership) -> None:
    others = Membership.objects.for_workspace(membership.workspace_id).filter(role=Role.OWNER).exclude(
        pk=membership.pk
    )
    if membership.role == Role.OWNER and not others.exists():
        raise ValidationError({"role": "A workspace must keep at least one owner."})


@transaction.atomic
def create_workspace(
    *, name: str, owner: User, slug: str | None = None, time_zone: str = "UTC"
) -> Workspace:
    workspace = Workspace(name=name, slug=slug or _unique_slug(name), time_zone=time_zone)
    workspace.full_clean()
    workspace.save()
    membership = Membership.objects.for_workspace(workspace).create(user=owner, role=Role.OWNER)
    sync_workspace_permissions(user=owner, workspace=workspace, codenames=permissions_for(membership.role))
    return workspace


@transaction.atomic
def add_member(
    *, workspace: Workspace, email: str, role: str, acting_user: User | None = None,
    password: str | None = None, name: str = "",
) -> Membership:
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}; expected one of {', '.join(Role.values)}."})
    check_may_assign_roles(acting_user=acting_user, workspace=workspace, roles={role})
    user, _ = get_or_create_user(email=email, password=password, name=name)
    if Membership.objects.for_workspace(workspace).filter(user=user).exists():
        raise ValidationError({"email": f"{user.email} is already a member of this workspace."})
    membership = Membership.objects.for_workspace(workspace).create(user=user, role=role)
    sync_workspace_permissions(user=user, workspace=workspace, codenames=permissions_for(role))
    return membership


@transaction.atomic
def change_member_role(*, membership: Membership, role: str, acting_user: User | None = None) -> Membership:
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}; expected one of {', '.join(Role.values)}."})
    membership = (Membership.objects.for_workspace(membership.workspace_id).select_for_update()
                  .select_related("workspace", "user").get(pk=membership.pk))
    if membership.role == role:
        return membership
    check_may_assign_roles(acting_user=acting_user, workspace=membership.workspace, roles={role, membership.role})
    if role != Role.OWNER:
        _ensure_an_owner_remains(membership)
    membership.role = role
    membership.save(update_fields=["role"])
    sync_workspace_permissions(user=membership.user, workspace=membership.workspace, codenames=permissions_for(role))
    return membership


@transaction.atomic
def remove_member(*, membership: Membership, acting_user: User | None = None) -> None:
    membership = (Membership.objects.for_workspace(membership.workspace_id).select_for_update()
                  .select_related("workspace", "user").get(pk=membership.pk))
    check_may_assign_roles(acting_user=acting_user, workspace=membership.workspace, roles={membership.role})
    _ensure_an_owner_remains(membership)
    sync_workspace_permissions(user=membership.user, workspace=membership.workspace, codenames=frozenset())
    membership.delete()


def _clean_scopes(kind: str, scopes) -> list[str]:
    if kind != ApiKeyKind.APP:
        if scopes:
            raise ValidationError({"scopes": "Only App API keys carry scopes."})
        return []
    scopes = sorted(set(scopes or []))
    if not scopes:
        raise ValidationError({"scopes": "An App API key needs at least one scope."})
    unknown = [s for s in scopes if s not in AppScope.values]
    if unknown:
        raise ValidationError({"scopes": f"Unknown scope(s): {', '.join(unknown)}."})
    return scopes


def _record_key_action(api_key: ApiKey, action: str) -> None:
    record_action(target=api_key, action=action, details={"kind": api_key.kind, "prefix": api_key.prefix})


def _issue_api_key(*, workspace: Workspace, kind: str, name: str, scopes, created_by: User | None) -> tuple[ApiKey, str]:
    secret = new_secret(kind)
    key = ApiKey.objects.for_workspace(workspace).create(
        kind=kind, name=name.strip(), scopes=scopes,
        prefix=secret[:12], secret_hash=hash_secret(secret), created_by=created_by,
    )
    _record_key_action(key, "api_key_created")
    return key, secret


def _revoke(api_key: ApiKey) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        _record_key_action(api_key, "api_key_revoked")
    # Cleared now and again after commit: a request racing the transaction may re-cache the key.
    cache_key = api_key_cache_key(api_key.secret_hash)
    cache.delete(cache_key)
    transaction.on_commit(lambda: cache.delete(cache_key))
    return api_key


def _locked_key(api_key: ApiKey) -> ApiKey:
    return (ApiKey.objects.for_workspace(api_key.workspace_id).select_for_update().select_related("workspace")
            .get(pk=api_key.pk))


# Every key write names its grantor: `acting_user` (the admin, or a management command run with
# --actor-email) or `acting_key` (the App API); neither is the trusted operator (a management
# command without --actor-email, or the system). accounts/grants.py decides what each may do.

@transaction.atomic
def create_api_key(
    *, workspace: Workspace, kind: str, name: str, scopes=(), created_by: User | None = None,
    acting_user: User | None = None, acting_key: ApiKey | None = None,
) -> tuple[ApiKey, str]:
    """Create a key and return it with its secret, which is never retrievable again. The grantor
    must hold every scope the key gets."""
    if kind not in ApiKeyKind.values:
        raise ValidationError({"kind": f"Unknown key kind {kind!r}; expected one of {', '.join(ApiKeyKind.values)}."})
    if not name or not name.strip():
        raise ValidationError({"name": "A key needs a name."})
    scopes = _clean_scopes(kind, scopes)
    check_may_manage_key(workspace=workspace, kind=kind, scopes=scopes, action="create",
                         acting_user=acting_user, acting_key=acting_key)
    return _issue_api_key(workspace=workspace, kind=kind, name=name, scopes=scopes,
                          created_by=created_by or acting_user)


@transaction.atomic
def revoke_api_key(*, api_key: ApiKey, acting_user: User | None = None, acting_key: ApiKey | None = None) -> ApiKey:
    """Revoke a key at once. The grantor must hold every scope of the key."""
    api_key = _locked_key(api_key)
    check_may_manage_key(workspace=api_key.workspace, kind=api_key.kind, scopes=api_key.scopes, action="revoke",
                         acting_user=acting_user, acting_key=acting_key)
    return _revoke(api_key)


@transaction.atomic
def rotate_api_key(
    *, api_key: ApiKey, acting_user: User | None = None, acting_key: ApiKey | None = None,
) -> tuple[ApiKey, str]:
    """Issue a replacement with the same kind, name and scopes, and revoke the old key. The grantor
    must hold every scope of the key: a rotation hands out a new secret with them."""
    old = _locked_key(api_key)
    check_may_manage_key(workspace=old.workspace, kind=old.kind, scopes=old.scopes, action="rotate",
                         acting_user=acting_user, acting_key=acting_key)
    if old.revoked_at is not None:
        raise ValidationError({"api_key": "A revoked key cannot be rotated."})
    new, secret = _issue_api_key(workspace=old.workspace, kind=old.kind, name=old.name, scopes=old.scopes,
                                 created_by=acting_user)
    old.replaced_by = new
    old.save(update_fields=["replaced_by"])
    _record_key_action(old, "api_key_rotated")
    _revoke(old)
    return new, secret


@transaction.atomic
def update_workspace(*, workspace: Workspace, **changes) -> Workspace:
    allowed = {"name", "time_zone", "event_retention_days"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationError({field: "This field cannot be changed." for field in unknown})
    workspace = Workspace.objects.select_for_update().get(pk=workspace.pk)
    for field, value in changes.items():
        setattr(workspace, field, value)
    workspace.full_clean()
    if changes:
        workspace.save(update_fields=sorted(changes))
    return workspace

