"""Security headers on every kind of response (docs/security.md): Content-Security-Policy on the
admin, public and docs pages (no inline script, no framing), nosniff, Referrer-Policy, frame
protection, and HSTS on HTTPS as told by the proxy's X-Forwarded-Proto only when that is trusted."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.test import Client
from django.urls import reverse

from accounts.models import Membership
from campaigns import services as campaign_services
from channels import links
from channels.deliveries import queue_delivery
from channels.models import Delivery
from channels.public_views import WEB_VIEW_CSP
from tests.support.factories import ChannelConfigFactory, ProfileFactory

pytestmark = pytest.mark.django_db

HTTPS = {"HTTP_X_FORWARDED_PROTO": "https"}
HSTS = "Strict-Transport-Security"
ROOT = Path(__file__).resolve().parent.parent


def policy(response) -> dict[str, list[str]]:
    """The Content-Security-Policy header as {directive: [sources]}."""
    header = response["Content-Security-Policy"]
    return {name: values for name, *values in (part.split() for part in header.split(";") if part.strip())}


def assert_site_policy(response):
    csp = policy(response)
    assert csp["default-src"] == ["'self'"]
    assert [s for s in csp["script-src"] if not s.startswith("'nonce-")] == ["'self'"]
    assert csp["style-src"] == ["'self'"] and csp["img-src"] == ["'self'"] and csp["font-src"] == ["'self'"]
    assert csp["object-src"] == ["'none'"] and csp["frame-ancestors"] == ["'none'"]
    assert csp["form-action"] == ["'self'"] and csp["base-uri"] == ["'self'"]


def assert_common_headers(response, referrer="same-origin"):
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == referrer


def assert_no_inline_code(html: str):
    """What the policy would block: inline style blocks and attributes, inline scripts and handlers."""
    assert "<style" not in html
    assert not re.search(r"\sstyle\s*=", html)
    assert not re.search(r"\son[a-z]+\s*=", html, re.IGNORECASE)
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag or 'type="application/json"' in tag, tag


@pytest.fixture
def owner(tenant_a) -> Client:
    client = Client()
    client.force_login(tenant_a.owner)
    return client


@pytest.fixture
def person(tenant_a):
    return ProfileFactory(workspace=tenant_a.workspace, external_id="ada", email="ada@example.test")


@pytest.fixture
def delivery(tenant_a, person):
    ChannelConfigFactory(workspace=tenant_a.workspace, type="email", provider="smtp", name="smtp",
                         settings={"host": "127.0.0.1", "port": 2525}, sender="news@acme.test", is_default=True)
    delivery, _ = queue_delivery(tenant_a.workspace, channel="email", source="campaign", source_id="1",
                                 profile=person, content={"subject": "Sale", "body": "<p>Sale</p>"})
    Delivery.unscoped.filter(pk=delivery.pk).update(body='<p style="color:red">Sale</p>')
    delivery.refresh_from_db()
    return delivery


def path_of(url: str) -> str:
    return url.removeprefix(settings.ULAK_PUBLIC_URL.rstrip("/"))


# --- the admin ----------------------------------------------------------------------------------------


def test_the_admin_login_page_over_plain_http(client):
    response = client.get("/admin/login/")

    assert response.status_code == 200
    assert_site_policy(response)
    assert_common_headers(response)
    assert HSTS not in response
    assert_no_inline_code(response.content.decode())


def test_https_behind_the_proxy_gets_hsts(client):
    response = client.get("/admin/login/", **HTTPS)

    assert response[HSTS] == "max-age=31536000"
    assert_site_policy(response)
    assert_common_headers(response)


def test_an_untrusted_forwarded_proto_gets_no_hsts(client, settings):
    settings.SECURE_PROXY_SSL_HEADER = None  # ULAK_TRUST_X_FORWARDED_PROTO=0

    response = client.get("/admin/login/", **HTTPS)

    assert HSTS not in response
    assert_site_policy(response)


@pytest.mark.parametrize("page", ["index", "members", "member", "audit log", "api keys"])
def test_console_pages_use_no_inline_code(owner, tenant_a, page):
    membership = Membership.unscoped.get(workspace=tenant_a.workspace, user=tenant_a.owner)
    url = {
        "index": reverse("admin:index"),
        "members": reverse("admin:accounts_membership_changelist"),
        "member": reverse("admin:accounts_membership_change", args=[membership.pk]),
        "audit log": reverse("admin:core_auditentry_changelist"),
        "api keys": reverse("admin:accounts_apikey_changelist"),
    }[page]

    response = owner.get(url, **HTTPS)

    assert response.status_code == 200
    assert_site_policy(response)
    assert_common_headers(response)
    assert response[HSTS] == "max-age=31536000"
    assert_no_inline_code(response.content.decode())
    assert finders.find("ulak/admin.css") and "/static/ulak/admin.css" in response.content.decode()


def test_the_login_lock_out_page_is_under_the_policy(tenant_a):
    client = Client()
    for i in range(settings.AXES_FAILURE_LIMIT):
        response = client.post("/admin/login/", {"username": tenant_a.owner.email, "password": f"x{i}"}, **HTTPS)

    assert response.status_code == 429
    assert_site_policy(response)
    assert_common_headers(response)
    assert response[HSTS] == "max-age=31536000"
    assert_no_inline_code(response.content.decode())


def test_the_email_preview_allows_what_email_needs_and_no_script(owner, tenant_a, person):
    message = campaign_services.create_transactional_message(
        workspace=tenant_a.workspace, name="Welcome", channel="email", subject="Hi",
        body='<p style="color:red">Hi</p><img src="https://cdn.example/logo.png">')
    url = reverse("admin:campaigns_transactionalmessage_preview", args=[message.pk])

    response = owner.post(url, {"id_type": "id", "identifier": "ada"})

    assert response.status_code == 200 and 'id="preview-html"' in response.content.decode()
    csp = policy(response)
    # The sandboxed srcdoc frame takes this page's policy: the email's styles and images must load.
    assert csp["style-src"] == ["'self'", "'unsafe-inline'"]
    assert csp["img-src"] == ["'self'", "*", "data:"] and csp["font-src"] == ["'self'", "*", "data:"]
    assert [s for s in csp["script-src"] if not s.startswith("'nonce-")] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"] and csp["default-src"] == ["'self'"]
    assert_common_headers(response)
    # Only the pages that frame an email: the message list keeps the site's policy.
    assert_site_policy(owner.get(reverse("admin:campaigns_transactionalmessage_changelist")))


# The message editor (campaigns/admin_editor.py): its page keeps the site's policy (plus the nonce
# CodeMirror's styles need); the live preview's email is the frame endpoint's own document, and only
# that response has what email HTML needs.
EMAIL_DOCUMENT_POLICY = {"default-src": ["'none'"], "style-src": ["'unsafe-inline'"], "img-src": ["*", "data:"],
                         "font-src": ["*", "data:"], "frame-ancestors": ["'self'"], "sandbox": []}


def test_the_message_editor_page_keeps_the_site_policy_and_only_its_email_frame_is_relaxed(owner, tenant_a, person):
    message = campaign_services.create_transactional_message(
        workspace=tenant_a.workspace, name="Welcome", channel="email", subject="Hi", body="<p>Hi</p>")
    page = owner.get(reverse("admin:campaigns_transactionalmessage_change", args=[message.pk]), **HTTPS)

    assert page.status_code == 200
    assert_common_headers(page)
    editor = policy(page)
    nonce = f"'nonce-{page.context['message_editor']['nonce']}'"
    assert editor["style-src"] == ["'self'", nonce] and editor["script-src"] == ["'self'", nonce]
    # Without the nonce, exactly the policy of a page that reads none (the console's index).
    site = policy(owner.get(reverse("admin:index")))
    assert_site_policy(owner.get(reverse("admin:index")))
    assert {name: [s for s in values if s != nonce] for name, values in editor.items()} == site
    assert "*" not in page["Content-Security-Policy"] and "unsafe-inline" not in page["Content-Security-Policy"]

    frame = owner.post(reverse("admin:campaigns_transactionalmessage_editor_frame", args=[message.pk]), {
        "channel": "email", "subject": "Hi", "preview_person": person.pk,
        "body": '<p style="color:red">Hi {{ customer.id }}</p><img src="https://cdn.example/logo.png">'}, **HTTPS)

    assert frame.status_code == 200
    assert frame.content.decode() == '<p style="color:red">Hi ada</p><img src="https://cdn.example/logo.png">'
    assert policy(frame) == EMAIL_DOCUMENT_POLICY  # no script-src: scripts fall back to 'none'
    assert frame["X-Frame-Options"] == "SAMEORIGIN"  # this response only: the site's is DENY
    assert frame["X-Content-Type-Options"] == "nosniff" and frame["Referrer-Policy"] == "same-origin"
    assert frame[HSTS] == "max-age=31536000"


# --- the pages people reach from a message ---------------------------------------------------------------


def test_the_preference_centre_is_under_the_policy_and_uses_no_inline_code(client, tenant_a, person):
    url = path_of(links.preferences_url_for(tenant_a.workspace.pk, person.cio_id))

    for response in (client.get(url), client.get(url, **HTTPS)):
        assert response.status_code == 200
        assert_site_policy(response)
        assert_common_headers(response)
        html = response.content.decode()
        assert_no_inline_code(html)
        assert '<link rel="stylesheet" href="/static/channels/public.css">' in html
    assert HSTS not in client.get(url) and client.get(url, **HTTPS)[HSTS] == "max-age=31536000"
    assert finders.find("channels/public.css")


def test_unsubscribe_and_invalid_link_pages_are_under_the_policy(client, delivery):
    unsubscribe = client.get(path_of(links.unsubscribe_url(delivery)))
    invalid = client.get("/unsubscribe/not-a-token")

    assert (unsubscribe.status_code, invalid.status_code) == (200, 404)
    for response in (unsubscribe, invalid):
        assert_site_policy(response)
        assert_common_headers(response)
        assert_no_inline_code(response.content.decode())


def test_the_view_in_browser_page_keeps_its_stricter_sandbox(client, delivery):
    response = client.get(path_of(links.view_in_browser_url(delivery)), **HTTPS)

    assert response.status_code == 200 and response.content.decode() == delivery.body
    assert response["Content-Security-Policy"] == WEB_VIEW_CSP  # not replaced by the site's policy
    assert policy(response)["default-src"] == ["'none'"] and "sandbox" in policy(response)
    assert_common_headers(response, referrer="no-referrer")
    assert response[HSTS] == "max-age=31536000"


# --- API responses -----------------------------------------------------------------------------------------


def test_api_responses_carry_the_headers(tenant_a):
    api = tenant_a.app_client()

    plain, secure = api.get("/v1/workspace"), api.get("/v1/workspace", **HTTPS)

    assert (plain.status_code, secure.status_code) == (200, 200)
    for response in (plain, secure):
        assert response["Content-Type"] == "application/json"
        assert_common_headers(response)
        assert policy(response)["frame-ancestors"] == ["'none'"]
    assert HSTS not in plain and secure[HSTS] == "max-age=31536000"
    errors = Client().get("/v1/workspace", HTTP_AUTHORIZATION="Bearer nope", **HTTPS)
    assert errors.status_code == 401 and errors[HSTS] == "max-age=31536000"
    assert_common_headers(errors)


def test_health_checks_carry_the_headers(client):
    response = client.get("/healthz", **HTTPS)

    assert response.status_code == 200
    assert_common_headers(response)
    assert response[HSTS] == "max-age=31536000"


# --- the API docs --------------------------------------------------------------------------------------------


def test_the_api_docs_load_their_scripts_from_the_site(client):
    swagger, redoc = client.get("/v1/docs/"), client.get("/v1/redoc/")

    for response in (swagger, redoc):
        assert response.status_code == 200
        csp = policy(response)
        assert [s for s in csp["script-src"] if not s.startswith("'nonce-")] == ["'self'"]
        assert csp["style-src"] == ["'self'", "'unsafe-inline'"]  # injected styles; never scripts
        assert csp["frame-ancestors"] == ["'none'"] and csp["connect-src"] == ["'self'"]
        assert_common_headers(response)
        html = response.content.decode()
        tags = re.findall(r"<script\b[^>]*>(.*?)</script>", html, re.S)
        assert tags and all(not body.strip() for body in tags), "inline script"
        assert "googleapis" not in html and "//cdn" not in html
    setup = re.search(r'<script src="([^"]*\?script=[^"]*)"', swagger.content.decode()).group(1)
    script = client.get(setup.replace("&amp;", "&"))
    assert script.status_code == 200 and "SwaggerUIBundle" in script.content.decode()


# --- settings from the environment ------------------------------------------------------------------------


def settings_under(env: dict) -> dict:
    code = ("import json, config.settings as s; print(json.dumps({'proxy': s.SECURE_PROXY_SSL_HEADER, "
            "'hsts': s.SECURE_HSTS_SECONDS, 'subdomains': s.SECURE_HSTS_INCLUDE_SUBDOMAINS, "
            "'limit': s.AXES_FAILURE_LIMIT, 'cooloff': s.AXES_COOLOFF_TIME and s.AXES_COOLOFF_TIME.total_seconds(), "
            "'rules': s.AXES_LOCKOUT_PARAMETERS}))")
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("ULAK_", "SECURE_"))}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**keep, **env}, capture_output=True,
                            text=True, timeout=60)
    if result.returncode:
        return {"error": result.stderr.strip().splitlines()[-1]}
    return json.loads(result.stdout)


def test_the_settings_follow_the_environment():
    assert settings_under({}) == {"proxy": ["HTTP_X_FORWARDED_PROTO", "https"], "hsts": 31536000,
                                  "subdomains": False, "limit": 5, "cooloff": 900.0,
                                  "rules": ["username", "ip_address"]}
    assert settings_under({"ULAK_TRUST_X_FORWARDED_PROTO": "0", "ULAK_HSTS_SECONDS": "0",
                           "ULAK_HSTS_INCLUDE_SUBDOMAINS": "1", "ULAK_LOGIN_FAILURE_LIMIT": "3",
                           "ULAK_LOGIN_COOLOFF_MINUTES": "60", "ULAK_LOGIN_LOCK_BY_ADDRESS": "0"}) == {
        "proxy": None, "hsts": 0, "subdomains": True, "limit": 3, "cooloff": 3600.0, "rules": ["username"]}
    assert settings_under({"ULAK_LOGIN_COOLOFF_MINUTES": "0"})["cooloff"] is None  # locked until cleared
    assert "ULAK_LOGIN_FAILURE_LIMIT" in settings_under({"ULAK_LOGIN_FAILURE_LIMIT": "0"})["error"]
