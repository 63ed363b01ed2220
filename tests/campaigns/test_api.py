"""App API: /v1/transactional, /v1/snippets, /v1/layouts and the template previews."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from channels.content import services as content_services
from campaigns import services
from campaigns.models import TransactionalMessage
from channels.content.models import Layout, Snippet
from tests.campaigns.conftest import make_config, make_message, make_topic
from tests.support.factories import ProfileFactory
from tests.helpers import app_client_with_scopes, warm

pytestmark = pytest.mark.django_db

MAX_LIST_QUERIES = 6


def fields_of(response) -> dict:
    return {error["field"]: error["message"] for error in response.json()["errors"]}


def assert_bad_input(response, field: str, message: str) -> None:
    """A 400 whose JSON errors name `field` alone, with `message`."""
    assert response.status_code == 400, response.content
    assert fields_of(response) == {field: message}


def queries(call) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = call()
    assert response.status_code == 200, response.content
    return len(captured)


def assert_list_queries_constant(tenant, url: str, make) -> None:
    """`make(i)` adds the i-th row: listing 6 rows costs the queries listing 1 does, and few."""
    client = warm(tenant.app_client())
    make(0)
    one = queries(lambda: client.get(url))
    for i in range(1, 6):
        make(i)
    assert queries(lambda: client.get(url)) == one <= MAX_LIST_QUERIES


# --- transactional messages ------------------------------------------------------------------------

def test_create_and_read_a_transactional_message(tenant_a):
    ws = tenant_a.workspace
    config = make_config(ws)
    topic = make_topic(ws, "receipts")
    layout = content_services.create_layout(workspace=ws, name="Brand", body="{{ content }}")
    client = tenant_a.app_client()
    response = client.post("/v1/transactional", {
        "name": "Receipt", "description": "after checkout", "channel": "email", "channel_config": config.pk,
        "topic": "receipts", "layout": layout.pk, "subject": "Order {{ trigger.order_id }}",
        "body": "<p>Thanks {{ customer.first_name | default: 'friend' }}</p>", "from": "Shop <shop@acme.test>",
        "reply_to": "help@acme.test", "preheader": "Your receipt", "payload": {"headers": {"X-Kind": "receipt"}},
        "send_to_unsubscribed": True, "tracked": False,
    }, format="json")
    assert response.status_code == 201, response.content
    message = response.json()["message"]
    row = TransactionalMessage.unscoped.get(pk=message["id"])
    assert row.workspace_id == ws.pk and row.content.from_address == "Shop <shop@acme.test>" and row.topic_id == topic.pk
    assert {k: v for k, v in message.items() if k not in ("id", "created_at", "updated_at")} == {
        "name": "Receipt", "description": "after checkout", "channel": "email", "channel_config": config.pk,
        "topic": {"id": topic.pk, "key": "receipts"}, "layout": layout.pk, "subject": "Order {{ trigger.order_id }}",
        "body": "<p>Thanks {{ customer.first_name | default: 'friend' }}</p>", "body_plain": "", "body_mjml": "",
        "from": "Shop <shop@acme.test>", "reply_to": "help@acme.test", "preheader": "Your receipt",
        "payload": {"headers": {"X-Kind": "receipt"}}, "send_to_unsubscribed": True, "tracked": False, "version": 1,
    }
    assert isinstance(message["created_at"], int)
    got = client.get(f"/v1/transactional/{row.pk}")
    assert got.status_code == 200 and got.json() == {"message": message}
    # the envelope is accepted too, and the topic by id
    wrapped = client.post("/v1/transactional/", {"message": {"name": "Other", "channel": "sms", "topic": topic.pk}},
                          format="json")
    assert wrapped.status_code == 201 and wrapped.json()["message"]["topic"]["id"] == topic.pk


@pytest.mark.parametrize("body, field, message", [
    ({"channel": "email"}, "name", "is required"),
    ({"name": "x"}, "channel", "is required"),
    ({"name": "x", "channel": "fax"}, "channel", "must be one of email, sms, whatsapp, push, in_app"),
    ({"name": "x", "channel": "email", "body": "{% if customer.vip %}"}, "body",
     "expected tag endif, found end of expression"),
    ({"name": "x", "channel": "email", "from": "{{ a | nope }}"}, "from", "line 1: unknown filter 'nope'"),
    ({"name": "x", "channel": "push", "payload": {"title": "{{ x"}}, "payload.title",
     "line 1: expected '}}', found end of file"),
    ({"name": "x", "channel": "email", "payload": "text"}, "payload", "must be an object"),
    ({"name": "x", "channel": "email", "subject": 5}, "subject", "must be a string"),
    ({"name": "x", "channel": "email", "tracked": "yes"}, "tracked", "must be true or false"),
    ({"name": "x", "channel": "email", "colour": "red"}, "colour", "is not a field of a transactional message"),
    ({"name": "x", "channel": "email", "layout": 999999}, "layout", "no layout of this workspace has this id"),
    ({"name": "x", "channel": "email", "topic": "nope"}, "topic", "no subscription topic of this workspace has this key"),
    ({"name": "x", "channel": "email", "channel_config": "abc"}, "channel_config", "must be an id"),
])
def test_bad_input_names_the_field_and_changes_nothing(tenant_a, body, field, message):
    response = tenant_a.app_client().post("/v1/transactional", body, format="json")
    assert_bad_input(response, field, message)
    assert response.json()["meta"]["error"] == f"{field}: {message}"
    assert not TransactionalMessage.unscoped.exists()


def test_another_workspaces_relations_are_unknown(two_tenants):
    a, b = two_tenants
    foreign_config = make_config(b.workspace)
    foreign_layout = content_services.create_layout(workspace=b.workspace, name="L", body="{{ content }}")
    make_topic(b.workspace, "globex")
    client = a.app_client()
    for key, value, reason in [("channel_config", foreign_config.pk, "no channel configuration of this workspace has this id"),
                               ("layout", foreign_layout.pk, "no layout of this workspace has this id"),
                               ("topic", "globex", "no subscription topic of this workspace has this key")]:
        response = client.post("/v1/transactional", {"name": "x", "channel": "email", key: value}, format="json")
        assert_bad_input(response, key, reason)
    config = make_config(a.workspace, "sms", "twilio")
    response = client.post("/v1/transactional", {"name": "x", "channel": "email", "channel_config": config.pk},
                           format="json")
    assert fields_of(response) == {"channel_config": "is a sms configuration; this message is email"}
    assert not TransactionalMessage.unscoped.exists()


def test_update_put_and_patch_change_only_what_is_given(tenant_a):
    message = make_message(tenant_a.workspace, description="d")
    client = tenant_a.app_client()
    response = client.patch(f"/v1/transactional/{message.pk}", {"subject": "New {{ customer.id }}"}, format="json")
    assert response.status_code == 200
    assert response.json()["message"]["subject"] == "New {{ customer.id }}"
    assert response.json()["message"]["version"] == 2
    response = client.put(f"/v1/transactional/{message.pk}", {"message": {"description": "e", "id": 999, "version": 7}},
                          format="json")
    assert response.status_code == 200
    body = response.json()["message"]
    assert (body["id"], body["description"], body["version"], body["subject"]) == \
        (message.pk, "e", 2, "New {{ customer.id }}")


def test_bad_update_changes_nothing(tenant_a):
    message = make_message(tenant_a.workspace)
    make_message(tenant_a.workspace, name="Taken")
    client = tenant_a.app_client()
    response = client.patch(f"/v1/transactional/{message.pk}", {"body": "{% endfor %}", "subject": "ok"}, format="json")
    assert_bad_input(response, "body", "line 1: unexpected tag 'endfor'")
    response = client.patch(f"/v1/transactional/{message.pk}", {"name": "Taken"}, format="json")
    assert fields_of(response) == {"name": "another transactional message in this workspace has this name"}
    row = TransactionalMessage.unscoped.get(pk=message.pk)
    assert (row.name, row.content.subject, row.version) == ("Welcome", "Hi {{ customer.first_name }}", 1)


def test_delete(tenant_a):
    message = make_message(tenant_a.workspace)
    client = tenant_a.app_client()
    assert client.delete(f"/v1/transactional/{message.pk}").status_code == 204
    assert not TransactionalMessage.unscoped.filter(pk=message.pk).exists()
    assert client.get(f"/v1/transactional/{message.pk}").status_code == 404


def test_another_workspaces_message_is_not_found(two_tenants):
    a, b = two_tenants
    theirs = make_message(b.workspace, name="Globex secret")
    client = a.app_client()
    url = f"/v1/transactional/{theirs.pk}"
    for response in (client.get(url), client.patch(url, {"subject": "x"}, format="json"),
                     client.put(url, {"subject": "x"}, format="json"), client.delete(url),
                     client.post(url + "/preview", {}, format="json")):
        assert response.status_code == 404, response.content
        assert "Globex" not in response.content.decode()
    row = TransactionalMessage.unscoped.get(pk=theirs.pk)
    assert row.content.subject == "Hi {{ customer.first_name }}" and row.version == 1
    assert client.get("/v1/transactional").json() == {"messages": []}


def test_list_is_the_workspaces_in_a_constant_number_of_queries(two_tenants):
    a, b = two_tenants
    make_message(b.workspace, name="Theirs")
    topic = make_topic(a.workspace)
    make_message(a.workspace, name="First", topic=topic)
    client = warm(a.app_client())
    one = queries(lambda: client.get("/v1/transactional"))
    for i in range(5):
        make_message(a.workspace, name=f"More {i}", topic=make_topic(a.workspace, f"t{i}"))
    many = queries(lambda: client.get("/v1/transactional"))
    assert many == one <= MAX_LIST_QUERIES
    names = [m["name"] for m in client.get("/v1/transactional").json()["messages"]]
    assert names == ["First"] + [f"More {i}" for i in range(5)]


def test_scopes(tenant_a, person):
    message = make_message(tenant_a.workspace)
    reader = app_client_with_scopes(tenant_a, "read")
    writer = app_client_with_scopes(tenant_a, "write")
    assert reader.get("/v1/transactional").status_code == 200
    assert reader.post("/v1/transactional", {"name": "x", "channel": "sms"}, format="json").status_code == 403
    assert reader.post(f"/v1/transactional/{message.pk}/preview", {"customer_id": "ada-1"},
                       format="json").status_code == 200
    assert reader.post("/v1/templates/preview", {"body": "x"}, format="json").status_code == 200
    assert reader.put("/v1/snippets", {"name": "s", "value": "v"}, format="json").status_code == 403
    assert writer.get("/v1/snippets").status_code == 403
    assert writer.put("/v1/snippets", {"name": "s", "value": "v"}, format="json").status_code == 201
    from rest_framework.test import APIClient
    assert APIClient().get("/v1/transactional").status_code in (401, 403)


# --- previews --------------------------------------------------------------------------------------

def test_preview_a_transactional_message_for_a_person(tenant_a, person):
    layout = content_services.create_layout(workspace=tenant_a.workspace, name="L", body="<body>{{ content }}</body>")
    message = make_message(tenant_a.workspace, layout=layout, subject="Order {{ trigger.order_id }}",
                           body="<p>{{ customer.first_name }} spent {{ event.total }}</p>{% unsubscribe_url %}")
    client = tenant_a.app_client()
    response = client.post(f"/v1/transactional/{message.pk}/preview",
                           {"customer_id": "ada-1", "event": {"total": 12}, "trigger": {"order_id": "A-1"}},
                           format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"subject": "Order A-1", "body": "<body><p>Ada spent 12</p>#preview</body>",
                               "body_plain": "Ada spent 12\n\n#preview", "from": "", "reply_to": "", "headers": {},
                               "payload": {}}
    by_email = client.post(f"/v1/transactional/{message.pk}/preview",
                           {"identifiers": {"email": "ADA@example.test"}, "event": {"total": 1},
                            "message_data": {"order_id": "B-2"}}, format="json")
    assert by_email.status_code == 200 and by_email.json()["subject"] == "Order B-2"


def test_preview_reports_the_render_error(tenant_a, person):
    message = make_message(tenant_a.workspace, body="<p>\n{{ trigger.order_id }}</p>")
    response = tenant_a.app_client().post(f"/v1/transactional/{message.pk}/preview", {"customer_id": "ada-1"},
                                          format="json")
    assert_bad_input(response, "body", "line 2: trigger.order_id is undefined")


@pytest.mark.parametrize("body, status, field", [
    ({"customer_id": "nobody"}, 404, None),
    ({"identifiers": {"phone": "+90"}}, 400, "identifiers"),
    ({"identifiers": {"id": "a", "email": "b"}}, 400, "identifiers"),
    ({"customer_id": "ada-1", "event": [1]}, 400, "event"),
    ({"customer_id": "ada-1", "trigger": {}, "message_data": {}}, 400, "message_data"),
    (["not", "an", "object"], 400, None),
])
def test_preview_bad_input(tenant_a, person, body, status, field):
    message = make_message(tenant_a.workspace)
    response = tenant_a.app_client().post(f"/v1/transactional/{message.pk}/preview", body, format="json")
    assert response.status_code == status, response.content
    assert response.json()["errors"][0]["field"] == field


def test_preview_for_another_workspaces_person_is_not_found(two_tenants):
    a, b = two_tenants
    ProfileFactory(workspace=b.workspace, external_id="globex-person", email="g@example.test")
    message = make_message(a.workspace, body="{{ customer.email | default: 'none' }}")
    client = a.app_client()
    for body in ({"customer_id": "globex-person"}, {"identifiers": {"email": "g@example.test"}}):
        response = client.post(f"/v1/transactional/{message.pk}/preview", body, format="json")
        assert response.status_code == 404
        assert "g@example.test" not in response.content.decode()
        response = client.post("/v1/templates/preview", {"body": "{{ customer.email }}", **body}, format="json")
        assert response.status_code == 404


def test_preview_inline_content(tenant_a, person):
    layout = content_services.create_layout(workspace=tenant_a.workspace, name="L", body="[{{ content }}]")
    client = tenant_a.app_client()
    response = client.post("/v1/templates/preview", {
        "customer_id": "ada-1", "subject": "Hi {{ customer.first_name }}", "body": "{{ trigger.x }}",
        "layout": layout.pk, "trigger": {"x": "from trigger"},
    }, format="json")
    assert response.status_code == 200, response.content
    assert (response.json()["subject"], response.json()["body"]) == ("Hi Ada", "[from trigger]")
    push = client.post("/v1/templates/preview", {
        "channel": "push", "body": "{{ event.n }} new", "payload": {"title": "{{ customer.plan }}"}, "event": {"n": 2},
        "customer_id": "ada-1"}, format="json")
    assert push.status_code == 200 and push.json()["payload"] == {"title": "pro"} and push.json()["body"] == "2 new"
    no_person = client.post("/v1/templates/preview", {"body": "{{ customer.first_name | default: 'you' }}"},
                            format="json")
    assert no_person.json()["body"] == "you"


@pytest.mark.parametrize("body, field, message", [
    ({"body": "{% for %}"}, "body", "line 1: missing expression"),
    ({"body": "{{ customer.first_name }}"}, "body", "line 1: customer.first_name is undefined"),
    ({"channel": "fax"}, "channel", "must be one of email, sms, whatsapp, push, webhook, in_app"),
    ({"channel": "push", "payload": {"title": "{{ nope }}"}}, "payload.title", "line 1: nope is undefined"),
    ({"channel": "sms", "body": "x", "layout": 1}, "layout", "only email messages have a layout"),
    ({"from": "{{ x | nope }}"}, "from", "line 1: unknown filter 'nope'"),
    ({"payload": {"subject": "x"}}, "payload.subject", "belongs at the top level of the request"),
])
def test_inline_preview_bad_input(tenant_a, body, field, message):
    if "layout" in body:
        body["layout"] = content_services.create_layout(workspace=tenant_a.workspace, name="L", body="{{ content }}").pk
    response = tenant_a.app_client().post("/v1/templates/preview", body, format="json")
    assert_bad_input(response, field, message)


def test_inline_preview_with_another_workspaces_layout(two_tenants):
    a, b = two_tenants
    layout = content_services.create_layout(workspace=b.workspace, name="L", body="{{ content }}")
    response = a.app_client().post("/v1/templates/preview", {"body": "x", "layout": layout.pk}, format="json")
    assert_bad_input(response, "layout", "no layout of this workspace has this id")


# --- snippets --------------------------------------------------------------------------------------

def test_snippets_list_upsert_get_delete(tenant_a):
    client = tenant_a.app_client()
    created = client.put("/v1/snippets", {"name": "footer", "value": "Bye {{ customer.first_name }}"}, format="json")
    assert created.status_code == 201
    assert {k: v for k, v in created.json()["snippet"].items() if k not in ("created_at", "updated_at")} == \
        {"name": "footer", "value": "Bye {{ customer.first_name }}", "version": 1}
    updated = client.put("/v1/snippets/", {"name": "footer", "value": "Ciao"}, format="json")
    assert updated.status_code == 200 and updated.json()["snippet"]["version"] == 2
    client.put("/v1/snippets", {"name": "a-header", "value": ""}, format="json")
    listed = client.get("/v1/snippets").json()["snippets"]
    assert [(s["name"], s["value"]) for s in listed] == [("a-header", ""), ("footer", "Ciao")]
    assert client.get("/v1/snippets/footer").json()["snippet"]["value"] == "Ciao"
    assert client.delete("/v1/snippets/footer").status_code == 204
    assert client.get("/v1/snippets/footer").status_code == 404
    assert list(Snippet.unscoped.values_list("name", flat=True)) == ["a-header"]


@pytest.mark.parametrize("body, field, message", [
    ({"value": "x"}, "name", "is required"),
    ({"name": "x"}, "value", "is required"),
    ({"name": "bad name", "value": "x"}, "name", "must be 1 to 100 letters, digits, _ or -"),
    ({"name": "ok", "value": "{{ x "}, "value", "line 1: expected '}}', found end of file"),
    ({"name": "ok", "value": 3}, "value", "must be a string"),
    ({"name": "ok", "value": "x", "extra": 1}, "extra", "is not a field of a snippet"),
])
def test_snippet_bad_input(tenant_a, body, field, message):
    response = tenant_a.app_client().put("/v1/snippets", body, format="json")
    assert_bad_input(response, field, message)
    assert not Snippet.unscoped.exists()


def test_another_workspaces_snippet(two_tenants):
    a, b = two_tenants
    content_services.create_snippet(workspace=b.workspace, name="secret", value="globex")
    client = a.app_client()
    assert client.get("/v1/snippets/secret").status_code == 404
    assert client.delete("/v1/snippets/secret").status_code == 404
    assert client.get("/v1/snippets").json() == {"snippets": []}
    assert client.put("/v1/snippets", {"name": "secret", "value": "acme"}, format="json").status_code == 201
    assert Snippet.unscoped.get(workspace=b.workspace).value == "globex"


def test_snippet_list_queries(tenant_a):
    assert_list_queries_constant(tenant_a, "/v1/snippets", lambda i: content_services.create_snippet(
        workspace=tenant_a.workspace, name=f"s{i}", value=""))


# --- layouts ---------------------------------------------------------------------------------------

def test_layouts_crud(tenant_a):
    client = tenant_a.app_client()
    created = client.post("/v1/layouts", {"name": "Brand", "body": "<main>{{ content }}</main>"}, format="json")
    assert created.status_code == 201
    layout_id = created.json()["layout"]["id"]
    assert Layout.unscoped.get(pk=layout_id).workspace_id == tenant_a.workspace.pk
    assert client.patch(f"/v1/layouts/{layout_id}", {"body": "<div>{{ content }}</div>"},
                        format="json").json()["layout"]["version"] == 2
    assert client.put(f"/v1/layouts/{layout_id}", {"layout": {"name": "Renamed"}},
                      format="json").json()["layout"]["name"] == "Renamed"
    assert [item["name"] for item in client.get("/v1/layouts").json()["layouts"]] == ["Renamed"]
    assert client.get(f"/v1/layouts/{layout_id}").json()["layout"]["body"] == "<div>{{ content }}</div>"
    make_message(tenant_a.workspace, layout=Layout.unscoped.get(pk=layout_id))
    in_use = client.delete(f"/v1/layouts/{layout_id}")
    assert in_use.status_code == 409
    assert "used by 1 transactional message" in in_use.json()["meta"]["error"]
    for message in TransactionalMessage.unscoped.all():
        services.delete_transactional_message(message=message)  # its content goes with it
    assert client.delete(f"/v1/layouts/{layout_id}").status_code == 204


@pytest.mark.parametrize("body, field, message", [
    ({"name": "L"}, "body", "is required"),
    ({"name": "L", "body": "<p>no slot</p>"}, "body", "must contain {{ content }} where the message goes"),
    ({"name": "L", "body": "{{ content }}{% endif %}"}, "body", "line 1: unexpected tag 'endif'"),
    ({"name": "", "body": "{{ content }}"}, "name", "is required"),
])
def test_layout_bad_input(tenant_a, body, field, message):
    response = tenant_a.app_client().post("/v1/layouts", body, format="json")
    assert_bad_input(response, field, message)
    assert not Layout.unscoped.exists()


def test_another_workspaces_layout(two_tenants):
    a, b = two_tenants
    layout = content_services.create_layout(workspace=b.workspace, name="Globex", body="{{ content }}")
    client = a.app_client()
    url = f"/v1/layouts/{layout.pk}"
    for response in (client.get(url), client.patch(url, {"name": "x"}, format="json"), client.delete(url)):
        assert response.status_code == 404
    assert Layout.unscoped.get(pk=layout.pk).name == "Globex"
    assert client.get("/v1/layouts").json() == {"layouts": []}


def test_layout_list_queries(tenant_a):
    assert_list_queries_constant(tenant_a, "/v1/layouts", lambda i: content_services.create_layout(
        workspace=tenant_a.workspace, name=f"L{i}", body="{{ content }}"))
