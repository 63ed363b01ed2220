"""MJML as an email authoring format: a message content's `body_mjml` compiled to its HTML `body`.

MJML (mjml.io) is a markup for responsive emails; `mjml-python` is the Rust MRML port, compiled
in-process. Liquid passes through compilation untouched where MJML keeps text: inside `mj-text`,
`mj-button`, `mj-raw`, `mj-preview`, attribute values that are copied as they are (`href`, `src`,
`alt`...), and `{% if %}`/`{% for %}` tags between elements. The compiled HTML is what is stored
in `body` and what every send renders, so a send costs nothing more than an HTML message.

What the compiler may not do here: read a file or fetch a URL (`mj-include` is refused: no
loader is given), or import web fonts by default (MJML's defaults import Google Fonts for
Ubuntu, which would tell Google every reader who opens the email: only fonts the template
declares with `<mj-font>` are imported).
"""

from __future__ import annotations

from functools import lru_cache

from mjml import mjml2html

MAX_MJML_LENGTH = 512 * 1024


class MjmlError(ValueError):
    """The MJML does not compile; `message` says why (as the compiler says it)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _no_include(path: str) -> str:
    raise ValueError(f"mj-include is not available ({path}): write the MJML in one document, "
                     "and use snippets for shared parts")


@lru_cache(maxsize=128)
def _compile(source: str) -> str:
    return mjml2html(source, fonts={}, include_loader=_no_include)


def compile_mjml(source: str) -> str:
    """The HTML of an MJML document (cached by its text). Raises MjmlError."""
    if len(source) > MAX_MJML_LENGTH:
        raise MjmlError(f"must be at most {MAX_MJML_LENGTH // 1024} KiB")
    if not source.lstrip().startswith("<mjml"):
        raise MjmlError("an MJML document starts with <mjml> (and has an <mj-body>)")
    try:
        return _compile(source)
    except ValueError as exc:  # the compiler's errors (syntax, unknown element, include refused)
        raise MjmlError(str(exc).strip() or "does not compile") from None
