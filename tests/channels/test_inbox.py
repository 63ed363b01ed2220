"""The in-app inbox: tokens minted by the App API, and the person-facing /inbox/v1/ API that
lists one person's in-app messages and records opens, clicks and dismissals."""

import time

import pytest
from django.core import signing
from rest_framework.test import APIClient

from channels import inbox_tokens
from channels.deliveries import queue_delivery
from channels.feedback import record_delivery_event
from channels.models import Delivery, DeliveryEvent
from tests.support.factories import ChannelConfigFactory, ProfileFactory
from profiles.models import Event
from tests.helpers import app_client_with_scopes

pytestmark = pytest.mark.django_db

M = "/inbox/v1/messages"


@pytest.fixture
def ada(tenant_a):
    ChannelConfigFactory(workspace=tenant_a.workspace, type="in_app", provider="inbox", name="Inbox")
    ChannelConfigFactory(workspace=tenant_a.workspace, type="email", provider="smtp", name="Mail")
    return ProfileFactory(workspace=tenant_a.workspace, external_id="ada", email="ada@example.com")


def handed_over(tenant, person, title="Hi", body="Hello", channel="in_app", status="delivered"):
    """An in-app delivery as the pipeline leaves it (rendered content kept, sent and delivered)."""
    delivery, _ = queue_delivery(tenant.workspace, channel=channel, source="transactional", profile=person,
                                 content={"title": title, "body": body})
    delivery.body, delivery.rendered_payload = body, {"title": title, "cta": "Open"}
    delivery.save(update_fields=["body", "rendered_payload"])
    if status != "queued":
        record_delivery_event(delivery, "sent")
        record_delivery_event(delivery, status)
    return delivery


def inbox_client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def mint(tenant, identifier="ada", query="", **body):
    response = tenant.app_client().post(f"/v1/customers/{identifier}/inbox_token{query}", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def test_minting_a_token(tenant_a, ada):
    answer = mint(tenant_a)
    assert set(answer) == {"token", "expires_at"}
    assert abs(answer["expires_at"] - (time.time() + inbox_tokens.DEFAULT_TTL_SECONDS)) < 60
    grant = inbox_tokens.verify(answer["token"])
    assert grant.workspace_id == tenant_a.workspace.pk and grant.cio_id == ada.cio_id
    short = mint(tenant_a, "ada%40example.com", "?id_type=email", ttl_seconds=600)
    assert abs(short["expires_at"] - (time.time() + 600)) < 60
    assert "ada@example.com" not in answer["token"]


@pytest.mark.parametrize("ttl", [0, 59, inbox_tokens.MAX_TTL_SECONDS + 1, "3600", True, 1.5])
def test_minting_bad_ttl(tenant_a, ada, ttl):
    response = tenant_a.app_client().post("/v1/customers/ada/inbox_token", {"ttl_seconds": ttl}, format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "ttl_seconds"


def test_minting_for_unknown_or_another_workspace_person_and_scopes(two_tenants, ada):
    tenant_a, tenant_b = two_tenants
    assert tenant_b.app_client().post("/v1/customers/ada/inbox_token", {}, format="json").status_code == 404
    assert tenant_a.app_client().post("/v1/customers/nobody/inbox_token", {}, format="json").status_code == 404
    reader = app_client_with_scopes(tenant_a, "read")
    assert reader.post("/v1/customers/ada/inbox_token", {}, format="json").status_code == 403


def test_list_shows_only_the_persons_handed_over_in_app_messages(two_tenants, ada):
    tenant_a, tenant_b = two_tenants
    bob = ProfileFactory(workspace=tenant_a.workspace, external_id="bob")
    mine = handed_over(tenant_a, ada, title="Welcome")
    handed_over(tenant_a, ada, status="queued")  # not handed over yet
    handed_over(tenant_a, bob)  # someone else's
    handed_over(tenant_a, ada, channel="email")  # another channel
    ChannelConfigFactory(workspace=tenant_b.workspace, type="in_app", provider="inbox")
    twin = ProfileFactory(workspace=tenant_b.workspace, external_id="ada")
    handed_over(tenant_b, twin)
    response = inbox_client(mint(tenant_a)["token"]).get(M)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["next"] == ""
    (message,) = body["messages"]
    assert message == {"id": mine.public_id, "title": "Welcome", "body": "Hello",
                       "payload": {"title": "Welcome", "cta": "Open"}, "status": "delivered", "opened": False,
                       "clicked": False, "dismissed": False, "created_at": int(mine.created_at.timestamp())}


def test_opened_clicked_dismissed(tenant_a, ada):
    delivery = handed_over(tenant_a, ada)
    client = inbox_client(mint(tenant_a)["token"])
    url = f"{M}/{delivery.public_id}"

    opened = client.post(f"{url}/opened")
    assert opened.status_code == 200 and opened.json()["message"]["status"] == "opened"
    assert client.post(f"{url}/opened/").status_code == 200  # a second open records nothing more
    clicked = client.post(f"{url}/clicked", {"href": "https://acme.test/offer"}, format="json").json()["message"]
    assert clicked["status"] == "clicked" and clicked["clicked"] and clicked["opened"]
    dismissed = client.post(f"{url}/dismissed").json()["message"]
    assert dismissed["dismissed"] is True and dismissed["status"] == "clicked"
    client.post(f"{url}/dismissed")

    events = list(DeliveryEvent.unscoped.filter(delivery=delivery).values_list("kind", "data"))
    assert [kind for kind, _ in events] == ["queued", "sent", "delivered", "opened", "clicked", "dismissed"]
    assert events[4][1] == {"source": "inbox", "href": "https://acme.test/offer"}
    names = set(Event.unscoped.filter(profile=ada).values_list("name", flat=True))
    assert {"in_app_opened", "in_app_clicked", "in_app_dismissed"} <= names

    assert client.get(M).json()["messages"] == []  # dismissed messages leave the list...
    listed = client.get(M, {"include_dismissed": "true"}).json()["messages"]
    assert [m["id"] for m in listed] == [delivery.public_id] and listed[0]["dismissed"]  # ...unless asked for


def test_another_persons_or_workspaces_message_is_not_found(two_tenants, ada):
    tenant_a, tenant_b = two_tenants
    bob = ProfileFactory(workspace=tenant_a.workspace, external_id="bob")
    theirs = handed_over(tenant_a, bob)
    ChannelConfigFactory(workspace=tenant_b.workspace, type="in_app", provider="inbox")
    other = handed_over(tenant_b, ProfileFactory(workspace=tenant_b.workspace, external_id="ada"))
    queued = handed_over(tenant_a, ada, status="queued")
    client = inbox_client(mint(tenant_a)["token"])
    for delivery in (theirs, other, queued):
        for action in ("opened", "clicked", "dismissed"):
            response = client.post(f"{M}/{delivery.public_id}/{action}")
            assert response.status_code == 404 and response.json()["meta"]["error"]
    assert client.post(f"{M}/nope/opened").status_code == 404
    assert client.post(f"{M}/{theirs.public_id}/deleted").status_code == 404
    assert not DeliveryEvent.unscoped.filter(kind__in=["opened", "clicked", "dismissed"]).exists()
    assert Delivery.unscoped.get(pk=theirs.pk).status == "delivered"


def test_bad_tokens_are_401_json(tenant_a, ada):
    delivery = handed_over(tenant_a, ada)
    good = mint(tenant_a)["token"]
    expired, _ = inbox_tokens.mint(tenant_a.workspace, ada, ttl_seconds=-1)
    forged = signing.dumps({"w": tenant_a.workspace.pk, "p": ada.cio_id, "e": int(time.time()) + 999},
                           salt="another.salt")
    other_workspace = signing.dumps({"w": tenant_a.workspace.pk + 1000, "p": ada.cio_id, "e": int(time.time()) + 999},
                                    salt=inbox_tokens.SALT)
    for header in (None, "Bearer", f"Bearer {good} extra", "Bearer not-a-token", f"Bearer {expired}",
                   f"Bearer {forged}", f"Bearer {good[:-2]}xx", f"Bearer {tenant_a.app_key}",
                   f"Bearer {other_workspace}", f"Basic {good}"):
        client = APIClient()
        if header:
            client.credentials(HTTP_AUTHORIZATION=header)
        for response in (client.get(M), client.post(f"{M}/{delivery.public_id}/opened")):
            assert response.status_code == 401, (header, response.content)
            assert response.json()["meta"]["error"] and response["WWW-Authenticate"].startswith("Bearer")
    assert "expired" in APIClient(HTTP_AUTHORIZATION=f"Bearer {expired}").get(M).json()["meta"]["error"]
    ada.delete()
    assert inbox_client(good).get(M).status_code == 401  # the person is gone
    assert not DeliveryEvent.unscoped.filter(kind="opened").exists()


def test_paging_in_constant_queries(tenant_a, ada, django_assert_max_num_queries):
    made = [handed_over(tenant_a, ada, title=f"m{i}") for i in range(5)]
    client = inbox_client(mint(tenant_a)["token"])
    with django_assert_max_num_queries(2):  # the person (and workspace), then the page
        first = client.get(M, {"limit": 2}).json()
    second = client.get(M, {"limit": 2, "start": first["next"]}).json()
    third = client.get(M, {"limit": 2, "start": second["next"]}).json()
    seen = [m["id"] for page in (first, second, third) for m in page["messages"]]
    assert seen == [d.public_id for d in reversed(made)] and third["next"] == ""
    for params, field in (({"limit": "0"}, "limit"), ({"start": "zz"}, "start"),
                          ({"include_dismissed": "maybe"}, "include_dismissed")):
        response = client.get(M, params)
        assert response.status_code == 400 and response.json()["errors"][0]["field"] == field
