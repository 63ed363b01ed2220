"""The message editor in a real browser (campaigns/admin_editor.py, frontend/src/message-editor/):
type in the code editor and see the server's preview follow for a person found by search, with
trigger data; the email in its sandboxed frame, posted there as a document of its own whose
policy lets its styles and images through while the page keeps the site's; SMS counters switching
to UCS-2 on a Turkish letter; "Send a test to me"; the unsaved-changes guard; the layout page's
editor. The conftest fails every test on a CSP violation (the editor's injected styles carry the
page's nonce), a console error or a request to another host (so the framed email's image is one
of the live server's own: remote images are allowed by the frame's policy, tested on the headers
in tests/campaigns/test_message_editor.py).

A Liquid error's answer is a 400, which Chromium logs as a console error ("Failed to load
resource"), so its display is not driven here: tests/campaigns/test_message_editor.py covers the
answer."""

import json
from urllib.parse import urlsplit

from django.urls import reverse

from accounts.roles import Role
from campaigns import services
from channels.content import services as content_services
from channels.content.models import Layout
from channels.models import Delivery
from tests.support.factories import ChannelConfigFactory, ProfileFactory, make_member

PREVIEW_READY = '#ulak-preview[data-state="ready"]'
FRAME_NAME = "ulak-preview-frame"


def change_url(message) -> str:
    return reverse("admin:campaigns_transactionalmessage_change", args=[message.pk])


def editor(page, name: str):
    return page.locator(f'[data-ulak-editor="{name}"] .cm-content')


def replace_text(page, name: str, text: str):
    """Select everything in the field's editor and put `text` in its place, as typed input (an
    insertion is not subject to auto-closing brackets and tags)."""
    editor(page, name).click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(text)


def wait_for_render(page, after: int):
    """Until the preview has answered more than `after` times and is settled (its email frame too)."""
    page.wait_for_function(f"""() => {{
        const panel = document.getElementById("ulak-preview");
        return Number(panel.dataset.renders || 0) > {after} && panel.dataset.state !== "loading"
            && panel.dataset.frame !== "loading";
    }}""")


def wait_for_frame(page):
    """Until the email frame has loaded the document of the latest post."""
    page.wait_for_function("""() => {
        const panel = document.getElementById("ulak-preview");
        return panel.dataset.state === "ready" && panel.dataset.frame === "ready";
    }""")


def email_frame(page):
    """The preview's email frame (Playwright's frame API), once it shows the frame endpoint's document."""
    frame = page.frame(name=FRAME_NAME)
    assert frame is not None and urlsplit(frame.url).path.endswith("/editor/frame/"), frame and frame.url
    return frame


def pick_person(page, person, term: str, listed: list[str]):
    """Search people by `term`, check what the search lists (this workspace's only), pick the first
    and wait until the preview is rendered for `person`."""
    page.fill("#ulak-preview-person-search", term)
    page.wait_for_selector(".ulak-preview-person-choice")
    assert page.locator(".ulak-preview-person-choice").all_inner_texts() == listed
    before = renders(page)
    page.click(".ulak-preview-person-choice")
    wait_for_render(page, before)
    assert page.get_attribute("#ulak-preview", "data-person") == str(person.pk)


def renders(page) -> int:
    return int(page.get_attribute("#ulak-preview", "data-renders") or 0)


def test_type_in_the_editor_and_see_the_preview_for_a_person_found_by_search(console, tenant_a, tenant_b, broker):
    person = ProfileFactory(workspace=tenant_a.workspace, external_id="ada-1", email="ada@example.test",
                            attributes={"first_name": "Ada"})
    ProfileFactory(workspace=tenant_b.workspace, external_id="ada-globex", email="ada@globex.test")
    ChannelConfigFactory(workspace=tenant_a.workspace, type="email", provider="smtp", name="smtp",
                         settings={"host": "127.0.0.1", "port": 2525}, sender="news@acme.test", is_default=True)
    message = services.create_transactional_message(
        workspace=tenant_a.workspace, name="Receipt", channel="email", subject="Your order",
        body="<p>Thanks {{ customer.first_name | default: 'there' }}</p>")
    console.log_in(tenant_a.owner)
    page = console.page
    console.goto(change_url(message))
    page.wait_for_selector('body[data-ulak-message-editor="ready"]')

    # The textarea is still the form field, hidden behind a code editor with Liquid over HTML.
    assert page.is_hidden("#id_body") and editor(page, "body").is_visible()
    assert page.locator('[data-ulak-editor="body"] .cm-lineNumbers').count() == 1
    page.wait_for_selector(PREVIEW_READY)
    assert "Thanks there" in page.inner_text("#ulak-preview-text")
    wait_for_frame(page)
    assert email_frame(page).inner_text("body") == "Thanks there"

    # A person found by search (their workspace only), then trigger data.
    pick_person(page, person, "ada", ["ada-1 · ada@example.test"])
    assert "Thanks Ada" in page.inner_text("#ulak-preview-text")

    before = renders(page)
    page.fill("#ulak-preview-trigger", json.dumps({"order_id": 42}))
    body = ('<style>p.total { color: rgb(200, 0, 0); }</style>'
            '<p class="total" style="font-weight: 700">Hi {{ customer.first_name }}, order {{ trigger.order_id }}</p>')
    replace_text(page, "body", body)
    wait_for_render(page, before)
    assert page.input_value("#id_body") == body  # the editor writes the field
    # Highlighted: HTML tags and the Liquid inside them are tokens of their own.
    assert page.locator('[data-ulak-editor="body"] .cm-line span').count() >= 5
    assert page.inner_text("#ulak-preview-text") == "Hi Ada, order 42"
    # The frame shows the email for Ada, its own styles applied under the frame document's policy.
    total = email_frame(page).locator("p.total")
    assert total.inner_text() == "Hi Ada, order 42"
    assert total.evaluate("p => getComputedStyle(p).color") == "rgb(200, 0, 0)"
    assert total.evaluate("p => getComputedStyle(p).fontWeight") == "700"
    assert page.get_attribute("#ulak-preview-html", "srcdoc") is None
    page.evaluate("window.scrollTo(0, 0)")
    console.screenshot("message-editor")

    # Send a test to me: one test delivery to the user's address, on the send queue.
    page.click("#ulak-test-button")
    page.wait_for_selector('#ulak-test-result[data-state="sent"]')
    delivery = Delivery.unscoped.get()
    assert (delivery.source, delivery.recipient, delivery.profile_id) == ("test", tenant_a.owner.email.lower(), None)
    assert delivery.public_id in page.inner_text("#ulak-test-result")
    assert broker.llen("email") == 1

    # The unsaved-changes guard: a link asks first (and staying keeps the page), and so does the browser.
    dialogs = []

    def dismiss(dialog):
        dialogs.append(dialog.type)
        dialog.dismiss()

    page.on("dialog", dismiss)
    page.click("#nav-sidebar a >> text=Layouts")
    assert dialogs == ["confirm"] and page.url.endswith(change_url(message))
    page.evaluate("() => { window.location.href = '/admin/'; }")
    page.wait_for_timeout(500)
    assert dialogs == ["confirm", "beforeunload"] and page.url.endswith(change_url(message))

    # Saving clears it.
    with page.expect_navigation():
        page.click("input[name=_continue]")
    message.refresh_from_db()
    assert message.content.body == body and message.version == 2
    page.wait_for_selector('body[data-ulak-message-editor="ready"]')
    # The tab keeps the person and the trigger data of the preview across the save.
    page.wait_for_selector(PREVIEW_READY)
    assert page.inner_text("#ulak-preview-text") == "Hi Ada, order 42"
    wait_for_frame(page)
    assert email_frame(page).inner_text("p.total") == "Hi Ada, order 42"
    with page.expect_navigation():
        page.click("#nav-sidebar a >> text=Layouts")
    assert dialogs == ["confirm", "beforeunload"] and page.url.endswith("/admin/channels/layout/")


def test_the_framed_email_has_its_styles_and_images_and_the_page_its_strict_policy(console, tenant_a):
    message = services.create_transactional_message(
        workspace=tenant_a.workspace, name="Styled", channel="email", subject="Styled", body="<p>Plain</p>")
    console.log_in(tenant_a.owner)
    page = console.page
    response = console.goto(change_url(message))
    # The page itself: the site's policy and the nonce, nothing for email HTML.
    page_policy = response.headers["content-security-policy"]
    assert "*" not in page_policy and "unsafe-inline" not in page_policy and "style-src-attr" not in page_policy
    wait_for_frame(page)
    assert email_frame(page).inner_text("body") == "Plain"

    frame_responses = []
    page.on("response", lambda answer: answer.url.endswith("/editor/frame/") and frame_responses.append(answer))
    before = renders(page)
    body = ('<html><head><style>h1.title { color: rgb(0, 90, 180); font-size: 30px; }</style></head><body>'
            '<h1 class="title">Welcome</h1><p id="note" style="color:red">Styled inline</p>'
            '<img id="logo" alt="logo" src="/static/admin/img/icon-yes.svg" width="16" height="16">'
            '</body></html>')
    replace_text(page, "body", body)
    wait_for_render(page, before)
    frame = email_frame(page)
    assert frame.inner_text("h1.title") == "Welcome" and frame.inner_text("#note") == "Styled inline"
    assert frame.locator("h1.title").evaluate("h => getComputedStyle(h).color") == "rgb(0, 90, 180)"
    assert frame.locator("h1.title").evaluate("h => getComputedStyle(h).fontSize") == "30px"
    assert frame.locator("#note").evaluate("p => getComputedStyle(p).color") == "rgb(255, 0, 0)"
    # The image, of the live server's own origin (the conftest refuses other hosts), loaded.
    frame.wait_for_function("() => document.getElementById('logo').complete")
    assert frame.locator("#logo").evaluate("img => img.naturalWidth") > 0
    # It was the frame endpoint's answer, with its own policy: no script at all, a sandbox.
    answer = frame_responses[-1]
    assert answer.status == 200 and answer.request.method == "POST"
    headers = answer.headers
    assert headers["x-frame-options"] == "SAMEORIGIN"
    directives = {part.split()[0]: part.split()[1:] for part in headers["content-security-policy"].split(";")}
    assert directives == {"default-src": ["'none'"], "style-src": ["'unsafe-inline'"], "img-src": ["*", "data:"],
                          "font-src": ["*", "data:"], "frame-ancestors": ["'self'"], "sandbox": []}
    # The frame stays sandboxed without scripts: its document runs nothing.
    assert page.get_attribute("#ulak-preview-html", "sandbox") == ""
    console.check()
    page.evaluate("window.scrollTo(0, 0)")
    console.screenshot("message-editor-frame")


def test_sms_counters_switch_to_ucs2_on_a_turkish_letter(console, tenant_a):
    message = services.create_transactional_message(
        workspace=tenant_a.workspace, name="Code", channel="sms", body="Your code is {{ trigger.code | default: '----' }}")
    console.log_in(tenant_a.owner)
    page = console.page
    console.goto(change_url(message))
    page.wait_for_selector('body[data-ulak-message-editor="ready"]')
    before = renders(page)
    page.fill("#ulak-preview-trigger", '{"code": "4242"}')
    wait_for_render(page, before)
    assert page.inner_text("#ulak-sms-encoding") == "GSM-7"
    assert page.inner_text("#ulak-sms-characters") == "17"
    assert page.inner_text("#ulak-sms-segments").startswith("1 (160 ")
    assert page.is_hidden("#ulak-preview-html-block")
    assert page.is_visible("#ulak-test-phone") and page.is_hidden("#ulak-test-email")

    before = renders(page)
    replace_text(page, "body", "Doğrulama kodunuz: {{ trigger.code }}")
    wait_for_render(page, before)
    assert page.inner_text("#ulak-preview-text") == "Doğrulama kodunuz: 4242"
    assert page.inner_text("#ulak-sms-encoding") == "UCS-2"
    assert page.inner_text("#ulak-sms-segments").startswith("1 (70 ")
    assert '"ğ"' in page.inner_text("#ulak-sms-why")

    before = renders(page)
    replace_text(page, "body", "Doğrulama kodunuz: {{ trigger.code }}. " + "x" * 60)
    wait_for_render(page, before)
    assert page.inner_text("#ulak-sms-segments").startswith("2 (67 ")
    assert page.is_hidden("#ulak-preview-meta")  # an SMS has no subject

    # An SMS is Liquid over plain text: "<b>" is text, not a tag to close.
    before = renders(page)
    replace_text(page, "body", "Kod: {{ trigger.code }} ")
    page.keyboard.type("<b>")
    wait_for_render(page, before)
    assert page.input_value("#id_body") == "Kod: {{ trigger.code }} <b>"
    assert page.inner_text("#ulak-preview-text") == "Kod: 4242 <b>"
    replace_text(page, "body", "Doğrulama kodunuz: {{ trigger.code }}. " + "x" * 60)
    wait_for_render(page, renders(page))
    page.evaluate("window.scrollTo(0, 0)")
    console.screenshot("message-editor-sms")


def test_the_layout_page_has_the_editor_and_saves_through_the_form(console, tenant_a):
    layout = content_services.create_layout(workspace=tenant_a.workspace, name="Frame",
                                            body="<html><body>{{ content }}</body></html>")
    console.log_in(tenant_a.owner)
    page = console.page
    console.goto(reverse("admin:channels_layout_change", args=[layout.pk]))
    page.wait_for_selector('body[data-ulak-message-editor="ready"]')
    assert page.is_hidden("#id_body")
    assert page.locator('[data-ulak-editor="body"] .cm-content').is_visible()
    # The live preview: the layout around a sample message, in the sandboxed frame.
    wait_for_frame(page)
    assert "The message goes here." in email_frame(page).inner_text("body")
    assert page.locator("#ulak-test-send").count() == 0  # a layout is not sent on its own
    before = renders(page)
    replace_text(page, "body", "<main>{{ content }}</main><footer>Hi {{ customer.first_name | default: 'you' }}</footer>")
    wait_for_render(page, before)
    frame = email_frame(page)
    assert frame.inner_text("main").startswith("The message goes here.") and frame.inner_text("footer") == "Hi you"
    with page.expect_navigation():
        page.click("input[name=_continue]")
    assert Layout.unscoped.get(pk=layout.pk).body == \
        "<main>{{ content }}</main><footer>Hi {{ customer.first_name | default: 'you' }}</footer>"
    console.screenshot("message-editor-layout")


def test_an_email_written_in_mjml_previews_as_its_compiled_html(console, tenant_a):
    mjml = ("<mjml><mj-body><mj-section><mj-column><mj-text>Hello {{ customer.first_name | default: 'there' }}"
            "</mj-text></mj-column></mj-section></mj-body></mjml>")
    message = services.create_transactional_message(workspace=tenant_a.workspace, name="Responsive", channel="email",
                                                     subject="Hi", body_mjml=mjml)
    console.log_in(tenant_a.owner)
    page = console.page
    console.goto(change_url(message))
    page.wait_for_selector(PREVIEW_READY)
    wait_for_frame(page)
    assert email_frame(page).inner_text("body").strip() == "Hello there"
    before = renders(page)
    replace_text(page, "body_mjml", mjml.replace("Hello", "Merhaba").replace(
        "</mj-column>", '<mj-button href="https://acme.test/">Open</mj-button></mj-column>'))
    wait_for_render(page, before)
    frame = email_frame(page)
    assert frame.locator("a", has_text="Open").count() == 1 and "Merhaba there" in frame.inner_text("body")
    with page.expect_navigation():
        page.click("input[name=_continue]")
    message.content.refresh_from_db()
    assert "Merhaba" in message.content.body_mjml and "Merhaba" in message.content.body
    console.screenshot("message-editor-mjml")


def test_an_analyst_sees_the_preview_of_the_saved_message_and_cannot_send(console, tenant_a):
    message = services.create_transactional_message(
        workspace=tenant_a.workspace, name="Receipt", channel="email", subject="Your order",
        body="<p>Saved {{ customer.first_name | default: 'there' }}</p>")
    console.log_in(make_member(tenant_a.workspace, Role.ANALYST))
    page = console.page
    console.goto(change_url(message))
    page.wait_for_selector(PREVIEW_READY)
    assert page.locator(".ulak-editor").count() == 0  # nothing to edit
    assert page.inner_text("#ulak-preview-text") == "Saved there"
    wait_for_frame(page)
    assert email_frame(page).inner_text("body") == "Saved there"
    assert page.locator("#ulak-test-button").count() == 0
    assert "needs the permission to change messages" in page.inner_text("#ulak-test-send")


def test_the_add_page_previews_the_new_message_as_it_is_typed(console, tenant_a, tenant_b):
    """A new message, not saved: its add page has the same preview (the model-level endpoints)."""
    person = ProfileFactory(workspace=tenant_a.workspace, external_id="ada-1", email="ada@example.test",
                            attributes={"first_name": "Ada"})
    ProfileFactory(workspace=tenant_b.workspace, external_id="ada-globex", email="ada@globex.test")
    console.log_in(tenant_a.owner)
    page = console.page
    frame_responses = []
    page.on("response", lambda answer: answer.url.endswith("/editor/frame/") and frame_responses.append(answer))
    response = console.goto(reverse("admin:campaigns_transactionalmessage_add"))
    page_policy = response.headers["content-security-policy"]
    assert "*" not in page_policy and "unsafe-inline" not in page_policy
    page.wait_for_selector('body[data-ulak-message-editor="ready"]')
    # No channel chosen yet: nothing is posted, the panel says what it waits for.
    page.wait_for_selector('#ulak-preview[data-state="idle"]')
    assert "Choose the message's channel" in page.inner_text("#ulak-preview-status")
    assert page.locator("#ulak-test-button").is_visible()  # a draft is tested before its first save

    # Typed before the channel is chosen (a message without content is refused with a 400, which
    # Chromium logs as a console error: see the module's docstring), then the channel.
    page.fill("#id_name", "Order shipped")
    page.fill("#ulak-preview-trigger", json.dumps({"order_id": 42}))
    replace_text(page, "subject", "Order {{ trigger.order_id }} shipped")
    body = ('<style>p.total { color: rgb(200, 0, 0); }</style>'
            '<p class="total">Hi {{ customer.first_name | default: "there" }}, order {{ trigger.order_id }}</p>')
    replace_text(page, "body", body)
    page.wait_for_timeout(600)  # past the debounce: still nothing posted without a channel
    assert renders(page) == 0 and page.get_attribute("#ulak-preview", "data-state") == "idle"
    page.select_option("#id_channel", "email")
    wait_for_render(page, 0)
    assert page.input_value("#id_subject") == "Order {{ trigger.order_id }} shipped"
    assert page.input_value("#id_body") == body
    assert page.inner_text("#ulak-preview-subject") == "Order 42 shipped"
    assert page.inner_text("#ulak-preview-text") == "Hi there, order 42"
    wait_for_frame(page)
    assert email_frame(page).inner_text("p.total") == "Hi there, order 42"

    # A person found by search (this workspace's only); the preview and the frame follow.
    pick_person(page, person, "ada", ["ada-1 · ada@example.test"])
    assert page.inner_text("#ulak-preview-text") == "Hi Ada, order 42"
    frame = email_frame(page)
    assert urlsplit(frame.url).path == reverse("admin:campaigns_transactionalmessage_editor_draft_frame")
    assert frame.inner_text("p.total") == "Hi Ada, order 42"
    assert frame.locator("p.total").evaluate("p => getComputedStyle(p).color") == "rgb(200, 0, 0)"
    # The frame's document had the email's own policy; the page kept the site's.
    headers = frame_responses[-1].headers
    assert frame_responses[-1].status == 200 and headers["x-frame-options"] == "SAMEORIGIN"
    assert "sandbox" in headers["content-security-policy"] and "script-src" not in headers["content-security-policy"]
    assert page.get_attribute("#ulak-preview-html", "srcdoc") is None
    console.check()
    page.evaluate("window.scrollTo(0, 0)")
    console.screenshot("message-editor-add")
    assert not Delivery.unscoped.exists()

    # "Send a test to me" before the first save: this workspace has no email configuration, so the
    # test delivery says why it was not sent.
    page.click("#ulak-test-button")
    page.wait_for_selector('#ulak-test-result[data-state="refused"]')
    assert "no active email channel configuration" in page.inner_text("#ulak-test-result")
    delivery = Delivery.unscoped.get()
    assert (delivery.source, delivery.source_id, delivery.workspace_id) == ("test", "", tenant_a.workspace.pk)
