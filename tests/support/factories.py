"""factory_boy factories for tests. Tenant objects are created through `unscoped`."""

import factory

from accounts import services
from accounts.models import User, Workspace
from profiles.models import Event, Profile


class UnscopedFactory(factory.django.DjangoModelFactory):
    class Meta:
        abstract = True

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return model_class.unscoped.create(*args, **kwargs)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.test")
    name = factory.Faker("name")
    password = factory.PostGenerationMethodCall("set_password", "pass-word-123")

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class WorkspaceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Workspace

    name = factory.Sequence(lambda n: f"Workspace {n}")
    slug = factory.Sequence(lambda n: f"workspace-{n}")


class ProfileFactory(UnscopedFactory):
    class Meta:
        model = Profile

    workspace = factory.SubFactory(WorkspaceFactory)
    external_id = factory.Sequence(lambda n: f"person-{n}")
    email = factory.Sequence(lambda n: f"person{n}@example.test")
    attributes = factory.LazyFunction(lambda: {"plan": "pro"})


class EventFactory(UnscopedFactory):
    class Meta:
        model = Event

    workspace = factory.SelfAttribute("profile.workspace")
    profile = factory.SubFactory(ProfileFactory)
    name = "purchase"
    data = factory.LazyFunction(lambda: {"total": 10})
    timestamp = factory.Faker("date_time_this_year", tzinfo=__import__("datetime").timezone.utc)


class ChannelConfigFactory(UnscopedFactory):
    """A channel configuration; pass `secrets={...}` to store encrypted credentials."""

    class Meta:
        model = "channels.ChannelConfig"

    workspace = factory.SubFactory(WorkspaceFactory)
    name = factory.Sequence(lambda n: f"channel {n}")
    type = "in_app"
    provider = "inbox"
    sender = ""

    @classmethod
    def _create(cls, model_class, *args, secrets=None, **kwargs):
        from channels.configs import write_secrets

        config = model_class(*args, **kwargs)
        if secrets:
            write_secrets(config, secrets)
        config.save()
        return config


def make_member(workspace, role: str, **user_kwargs):
    user = UserFactory(**user_kwargs)
    services.add_member(workspace=workspace, email=user.email, role=role)
    return user
