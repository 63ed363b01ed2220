"""MJML as an email authoring format (channels/content/mjml.py): a message content's `body_mjml` is
compiled to its HTML `body` on save — through the services, the App API, the admin form — and in
the editor's preview of unsaved content; what cannot be compiled or does not fit is refused naming
the field, and nothing changes."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from campaigns import services
from campaigns.models import TransactionalMessage
from channels.content import services as content_services
from channels.content.mjml import MjmlError, compile_mjml
from channels.content.models import MessageContent
from channels.content.rendering import preview
from tests.campaigns.conftest import make_config, make_message
from tests.support.fakes import FakeSmtpServer

pytestmark = pytest.mark.django_db

WELCOME = """<mjml>
  <mj-head><mj-preview>Hi {{ customer.first_name }}</mj-preview></mj-head>
  <mj-body>
    <mj-section>
      <mj-column>
        <mj-text>Hello {{ customer.first_name | default: "there" }}</mj-text>
        {% if customer.plan == "pro" %}<mj-text>Thanks for being pro</mj-text>{% endif %}
        <mj-button href="https://acme.test/orders/{{ trigger.order_id }}">Your order</mj-button>
      </mj-column>
    </mj-section>
  </mj-body>
</mjml>"""


def mjml_message(workspace, **fields):
    return make_message(workspace, name="MJML welcome", subject="Welcome", body="", body_mjml=WELCOME, **fields)


def errors_of(excinfo) -> dict:
    return {name: messages[0] for name, messages in excinfo.value.message_dict.items()}


# --- the compiler ------------------------------------------------------------------------------------

def test_mjml_compiles_to_responsive_html_keeping_liquid():
    html = compile_mjml(WELCOME)
    assert html.startswith("<!doctype html>") and "mj-column-per-100" in html and "@media" in html
    for liquid in ('Hello {{ customer.first_name | default: "there" }}', "{% if customer.plan == \"pro\" %}",
                   "{% endif %}", 'href="https://acme.test/orders/{{ trigger.order_id }}"'):
        assert liquid in html


def test_the_compiler_reads_no_file_and_imports_no_web_font_by_default():
    with pytest.raises(MjmlError, match="unable to load included template"):
        compile_mjml('<mjml><mj-body><mj-include path="/etc/passwd" /></mj-body></mjml>')
    assert "googleapis" not in compile_mjml(WELCOME) and "<link" not in compile_mjml(WELCOME)
    declared = compile_mjml('<mjml><mj-head><mj-font name="Raleway" href="https://fonts.acme.test/raleway.css" />'
                            '</mj-head><mj-body><mj-section><mj-column><mj-text font-family="Raleway">x</mj-text>'
                            "</mj-column></mj-section></mj-body></mjml>")
    assert "https://fonts.acme.test/raleway.css" in declared  # a font the template declares is imported


@pytest.mark.parametrize("source, reason", [
    ("<mjml><mj-body><mj-section>", "unexpected end of stream"),
    ("<p>not mjml</p>", "an MJML document starts with <mjml>"),
])
def test_what_does_not_compile_says_why(source, reason):
    with pytest.raises(MjmlError, match=reason):
        compile_mjml(source)


# --- saving ------------------------------------------------------------------------------------------

def test_a_message_written_in_mjml_stores_the_compiled_body_and_renders_it(tenant_a, person):
    message = mjml_message(tenant_a.workspace)
    content = message.content
    assert content.body_mjml == WELCOME and content.body == compile_mjml(WELCOME)
    rendered = preview(workspace=tenant_a.workspace, message_content=content, profile=person,
                       trigger={"order_id": 7})
    assert "Hello Ada" in rendered.body and "Thanks for being pro" in rendered.body
    assert 'href="https://acme.test/orders/7"' in rendered.body
    assert "Hello Ada" in rendered.body_plain  # the text part derived from the compiled HTML


def test_a_message_in_mjml_reaches_the_provider_as_its_compiled_html(tenant_a, person):
    from channels.deliveries import queue_delivery
    from tests.support.delivering import send_now

    message = mjml_message(tenant_a.workspace)
    with FakeSmtpServer() as smtp:
        make_config(tenant_a.workspace, settings={"host": "127.0.0.1", "port": smtp.port, "timeout": 5})
        delivery, _ = queue_delivery(tenant_a.workspace, channel="email", source="transactional",
                                     source_id=str(message.pk), profile=person, recipient=person.email,
                                     message_content=message.content, message_data={"trigger": {"order_id": 3}},
                                     tracked=False)
        send_now(tenant_a, delivery)
    (_, _, sent), = smtp.messages
    html = sent.get_body(("html",)).get_content()
    assert "mj-column-per-100" in html and "Hello Ada" in html and "orders/3" in html


def test_editing_the_mjml_recompiles_the_body_and_raises_the_version(tenant_a):
    message = mjml_message(tenant_a.workspace)
    changed = WELCOME.replace("Your order", "See your order")
    services.update_transactional_message(message=message, body_mjml=changed)
    message.refresh_from_db()
    assert message.version == 2 and message.content.version == 2
    assert "See your order" in message.content.body and message.content.body == compile_mjml(changed)
    # another field's edit leaves the compiled body as it is
    services.update_transactional_message(message=message, subject="Hi again")
    message.content.refresh_from_db()
    assert message.content.body == compile_mjml(changed)


def test_a_body_given_beside_the_mjml_must_be_empty_or_its_compiled_html(tenant_a):
    message = mjml_message(tenant_a.workspace)
    with pytest.raises(ValidationError) as excinfo:
        services.update_transactional_message(message=message, body="<p>hand-written</p>")
    assert errors_of(excinfo) == {"body": 'is compiled from body_mjml: change body_mjml, or set body_mjml to "" to '
                                          "write the HTML"}
    # what a read answered, sent back whole, is accepted (the body is the MJML's HTML)
    services.update_transactional_message(message=message, body=message.content.body, body_mjml=WELCOME)
    # back to HTML: no MJML, a body of one's own
    services.update_transactional_message(message=message, body_mjml="", body="<p>hand-written</p>")
    message.content.refresh_from_db()
    assert message.content.body_mjml == "" and message.content.body == "<p>hand-written</p>"


@pytest.mark.parametrize("fields, expected", [
    ({"body_mjml": "<mjml><mj-body><mj-section>"}, {"body_mjml": "MJML: unexpected end of stream in root template"}),
    ({"body_mjml": WELCOME.replace("{% endif %}", "")}, {"body_mjml": "expected tag endif, found end of expression"}),
    ({"body_mjml": WELCOME, "channel": "sms"}, {"body_mjml": "only email messages are written in MJML"}),
    ({"body_mjml": 7}, {"body_mjml": "must be a string"}),
])
def test_mjml_that_does_not_fit_is_refused_naming_the_field(tenant_a, fields, expected):
    fields = {"name": "Bad", "channel": "email", "subject": "S", **fields}
    with pytest.raises(ValidationError) as excinfo:
        services.create_transactional_message(workspace=tenant_a.workspace, **fields)
    assert errors_of(excinfo) == expected
    assert not TransactionalMessage.unscoped.exists() and not MessageContent.unscoped.exists()


def test_an_mjml_email_takes_no_layout(tenant_a):
    layout = content_services.create_layout(workspace=tenant_a.workspace, name="Frame", body="<div>{{ content }}</div>")
    with pytest.raises(ValidationError) as excinfo:
        mjml_message(tenant_a.workspace, layout=layout)
    assert errors_of(excinfo) == {"layout": "an MJML email is a whole document: it takes no layout (set layout to none)"}


# --- the App API -------------------------------------------------------------------------------------

def test_the_api_takes_and_answers_body_mjml(tenant_a):
    client = tenant_a.app_client()
    response = client.post("/v1/transactional", {"name": "Welcome", "channel": "email", "subject": "Hi",
                                                  "body_mjml": WELCOME}, format="json")
    assert response.status_code == 201, response.content
    answer = response.json()["message"]
    assert answer["body_mjml"] == WELCOME and answer["body"] == compile_mjml(WELCOME)

    url = f"/v1/transactional/{answer['id']}"
    sent_back = {k: v for k, v in answer.items() if k not in ("id", "version", "created_at", "updated_at")}
    assert client.put(url, sent_back, format="json").status_code == 200  # a read sent back whole
    assert client.get(url).json()["message"]["version"] == 1  # nothing changed

    bad = client.patch(url, {"body_mjml": "<mjml><mj-body><mj-section>"}, format="json")
    assert bad.status_code == 400
    assert [e["field"] for e in bad.json()["errors"]] == ["body_mjml"]
    assert bad.json()["errors"][0]["message"].startswith("MJML: unexpected end of stream")
    both = client.patch(url, {"body": "<p>mine</p>"}, format="json")
    assert both.status_code == 400 and [e["field"] for e in both.json()["errors"]] == ["body"]
    assert client.get(url).json()["message"] == {**answer, "updated_at": client.get(url).json()["message"]["updated_at"]}

    wrong_type = client.patch(url, {"body_mjml": ["x"]}, format="json")
    assert wrong_type.status_code == 400 and wrong_type.json()["errors"][0]["field"] == "body_mjml"


# --- the console ---------------------------------------------------------------------------------------

ADMIN = "admin:campaigns_transactionalmessage"


def form_post(**overrides):
    data = {"name": "Welcome", "description": "", "channel": "email", "channel_config": "", "topic": "", "layout": "",
            "subject": "Hi", "preheader": "", "from_address": "", "reply_to": "", "body": "", "body_mjml": WELCOME,
            "body_plain": "", "payload": "{}", "send_to_unsubscribed": "on", "tracked": "on"}
    data.update(overrides)
    return data


def test_the_admin_form_saves_mjml_compiled_and_shows_its_errors(client, tenant_a):
    client.force_login(tenant_a.owner)
    response = client.post(reverse(f"{ADMIN}_add"), form_post())
    assert response.status_code == 302, response.context["adminform"].form.errors
    message = TransactionalMessage.unscoped.get()
    assert message.content.body == compile_mjml(WELCOME)

    changed = WELCOME.replace("Hello", "Hey")
    # the page posts back the compiled body it showed, line breaks as CRLF (as browsers post textareas)
    page = client.post(reverse(f"{ADMIN}_change", args=[message.pk]),
                       form_post(body=message.content.body.replace("\n", "\r\n"), body_mjml=changed))
    assert page.status_code == 302
    message.content.refresh_from_db()
    assert "Hey {{ customer.first_name" in message.content.body

    refused = client.post(reverse(f"{ADMIN}_change", args=[message.pk]),
                          form_post(body=message.content.body, body_mjml="<mjml><mj-body>"))
    assert refused.status_code == 200
    assert refused.context["adminform"].form.errors["body_mjml"][0].startswith("MJML: ")
    message.content.refresh_from_db()
    assert "Hey {{ customer.first_name" in message.content.body


def editor_draft(**overrides):
    data = {"name": "Welcome", "channel": "email", "channel_config": "", "layout": "", "subject": "Hi",
            "preheader": "", "from_address": "", "reply_to": "", "body": "", "body_mjml": WELCOME,
            "body_plain": "", "payload": "{}", "preview_person": "", "preview_trigger": '{"order_id": 5}',
            "preview_event": "", "test_to": ""}
    data.update(overrides)
    return data


def test_the_editor_previews_unsaved_mjml_for_a_person(client, tenant_a, person):
    client.force_login(tenant_a.owner)
    message = mjml_message(tenant_a.workspace)
    url = reverse(f"{ADMIN}_editor_preview", args=[message.pk])
    response = client.post(url, editor_draft(body_mjml=WELCOME.replace("Hello", "Howdy"), preview_person=person.pk))
    assert response.status_code == 200, response.content
    html = response.json()["html"]
    assert "Howdy Ada" in html and "mj-column-per-100" in html and "orders/5" in html
    frame = client.post(reverse(f"{ADMIN}_editor_frame", args=[message.pk]), editor_draft(preview_person=person.pk))
    assert frame.status_code == 200 and "Hello Ada" in frame.content.decode()

    broken = client.post(url, editor_draft(body_mjml="<mjml><mj-body>"))
    assert broken.status_code == 400 and broken.json()["errors"][0]["field"] == "body_mjml"
    # a render error of the compiled body names the MJML field the author writes
    strict = client.post(url, editor_draft(body_mjml=WELCOME.replace("{{ trigger.order_id }}", "{{ trigger.nope }}"),
                                           preview_person=person.pk))
    assert strict.status_code == 400 and [e["field"] for e in strict.json()["errors"]] == ["body_mjml"]
    assert strict.json()["errors"][0]["message"] == "trigger.nope is undefined (in the HTML compiled from the MJML)"
    message.content.refresh_from_db()
    assert message.content.version == 1  # a preview saves nothing
