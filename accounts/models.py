import secrets
import zoneinfo

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.roles import WORKSPACE_PERMISSIONS, Role
from core.models import WorkspaceScopedModel


class UserManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email, password=None, **extra):
        if not email:
            raise ValueError("email is required")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save(using=self._db)
        return user

    def create_superuser(self, email, password=None, **extra):
        extra.update(is_staff=True, is_superuser=True)
        return self.create_user(email, password, **extra)

    def get_by_natural_key(self, email):
        return self.get(email__iexact=email)


class User(AbstractBaseUser, PermissionsMixin):
    """A console user. Logs in with email; belongs to workspaces through memberships."""

    email = models.EmailField(unique=True)
    name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False, help_text="Operator of the whole installation.")
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []
    personal_data_fields = ("email", "name")

    class Meta:
        constraints = [models.UniqueConstraint(Lower("email"), name="user_email_ci_unique")]

    def __str__(self):
        return self.email


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not a known IANA time zone")


def new_site_id() -> str:
    return secrets.token_hex(10)


class Workspace(models.Model):
    """The tenant. Every tenant table points here."""

    is_workspace_model = True  # core's audit log files changes of this model under its own id

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    site_id = models.CharField(max_length=40, unique=True, default=new_site_id, editable=False)
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    event_retention_days = models.PositiveIntegerField(default=365, validators=[MinValueValidator(1)])
    created_at = models.DateTimeField(auto_now_add=True)

    audit_str_is_safe = True  # the workspace name

    class Meta:
        default_permissions = ()  # access is decided by the workspace permissions below
        permissions = list(WORKSPACE_PERMISSIONS.items())
        ordering = ["name"]

    def __str__(self):
        return self.name


class Membership(WorkspaceScopedModel):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "user"], name="membership_unique_user")
        ]
        ordering = ["created_at"]

    def __str__(self):
        return f"{self.user} ({self.get_role_display()})"


class ApiKeyKind(models.TextChoices):
    TRACK = "track", "Track API (site id + key)"
    CDP = "cdp", "CDP write key"
    APP = "app", "App API bearer key"


class AppScope(models.TextChoices):
    READ = "read", "read"
    WRITE = "write", "write"
    COMPLIANCE = "compliance", "compliance"


class ApiKey(WorkspaceScopedModel):
    """A credential. Only a SHA-256 digest of the secret is stored; the secret is shown once."""

    kind = models.CharField(max_length=10, choices=ApiKeyKind.choices)
    name = models.CharField(max_length=120)
    prefix = models.CharField(max_length=16, editable=False, help_text="First characters, for recognition")
    secret_hash = models.CharField(max_length=64, editable=False)
    scopes = ArrayField(models.CharField(max_length=20, choices=AppScope.choices), default=list, blank=True)
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    replaced_by = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    rate_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests per second for this key; empty uses ULAK_INGEST_RATE_LIMIT."
    )

    audit_str_is_safe = True  # name, kind and the public prefix

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "secret_hash"], name="apikey_unique_secret"),
        ]
        indexes = [models.Index(fields=["secret_hash"], name="apikey_secret_lookup")]
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} ({self.kind}, {self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
