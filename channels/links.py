"""Signed links in messages: open pixel, click redirect, unsubscribe, preferences, web view.

Tokens are Django signatures (SECRET_KEY, one salt per purpose), so a link cannot be forged or
pointed at another delivery, and carry no personal data: only public ids.
"""

from urllib.parse import quote

from django.conf import settings
from django.core import signing

SALTS = {
    "open": "ulak.links.open",
    "click": "ulak.links.click",
    "unsubscribe": "ulak.links.unsubscribe",
    "preferences": "ulak.links.preferences",
    "view": "ulak.links.view",
}


def sign(purpose: str, value) -> str:
    return signing.dumps(value, salt=SALTS[purpose], compress=True)


def unsign(purpose: str, token: str):
    """The signed value, or raises signing.BadSignature."""
    return signing.loads(token, salt=SALTS[purpose])


def _url(path: str) -> str:
    return settings.ULAK_PUBLIC_URL.rstrip("/") + path


def open_pixel_url(delivery) -> str:
    return _url(f"/t/o/{sign('open', delivery.public_id)}.gif")


def click_url(delivery, target: str) -> str:
    token = sign("click", {"d": delivery.public_id, "u": target})
    return _url(f"/t/c/{quote(token)}")


def unsubscribe_url(delivery) -> str:
    """One-click unsubscribe (RFC 8058): GET shows a confirmation page, POST unsubscribes."""
    return _url(f"/unsubscribe/{sign('unsubscribe', delivery.public_id)}")


def preferences_url_for(workspace_id: int, cio_id: str) -> str:
    return _url(f"/preferences/{sign('preferences', {'w': workspace_id, 'p': cio_id})}")


def preferences_url(delivery) -> str:
    """The subscription centre of the delivery's person ('' for a delivery without one)."""
    if delivery.profile_id is None:
        return ""
    return preferences_url_for(delivery.workspace_id, delivery.profile.cio_id)


def view_in_browser_url(delivery) -> str:
    return _url(f"/t/v/{sign('view', delivery.public_id)}")
