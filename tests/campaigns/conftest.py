import pytest

from campaigns import services
from channels.content import templating
from channels.models import ChannelConfig, SubscriptionTopic
from tests.support.factories import ProfileFactory


@pytest.fixture(autouse=True)
def _fresh_template_cache():
    templating.cache.clear()
    yield
    templating.cache.clear()


@pytest.fixture
def person(tenant_a):
    return ProfileFactory(workspace=tenant_a.workspace, external_id="ada-1", email="ada@example.test",
                          phone="+905551112233", attributes={"first_name": "Ada", "plan": "pro",
                                                             "tags": ["vip", "beta"], "address": {"city": "Izmir"}})


def make_config(workspace, channel="email", provider="smtp", name=None, **extra):
    """The workspace's configuration of that name, made (as the default for its channel) if missing."""
    config, _ = ChannelConfig.unscoped.get_or_create(
        workspace=workspace, name=name or f"{channel} config",
        defaults={"type": channel, "provider": provider, "sender": extra.pop("sender", "news@acme.test"),
                  "is_default": extra.pop("is_default", True), **extra})
    return config


def make_topic(workspace, key="news"):
    return SubscriptionTopic.unscoped.create(workspace=workspace, key=key, name=key.title())


def make_message(workspace, **fields):
    fields = {"name": "Welcome", "channel": "email", "subject": "Hi {{ customer.first_name }}",
              "body": "<p>Hello {{ customer.first_name }}</p>", **fields}
    return services.create_transactional_message(workspace=workspace, **fields)
