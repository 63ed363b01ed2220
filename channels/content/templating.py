"""Tenant templates: a sandboxed Liquid (python-liquid 2) environment, its limits, custom tags
and a bounded cache of parsed templates. docs/templates.md is the reference for users.

Sandbox: templates only ever see plain data (`plain()` turns anything else into strings), and
python-liquid resolves `a.b` by item access only, so no Python attribute, method or setting is
reachable. A missing variable fails the render ("customer.first_name is undefined") unless the
template guards it with `default` or an `if`. Every resource limit breach is a RenderError.

Time: a render has a deadline (ULAK_TEMPLATE_RENDER_SECONDS), shared by the renders nested in it
(snippets), checked at every loop iteration and before every filter. A check cannot interrupt a
running filter, so the size limits keep any one filter call short: lists handed to or made by a
filter hold at most SEQUENCE_LIMIT items, strings at most OUTPUT_LIMIT characters, and the
filters that would be quadratic on such sizes (uniq, map with a list for its key) are replaced.
"""

from __future__ import annotations

import datetime
import decimal
import functools
import hashlib
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from contextlib import contextmanager
from contextvars import ContextVar

from django.conf import settings
from liquid import BoundTemplate, Environment, RenderContext
from liquid.ast import Node
from liquid.exceptions import (
    BlockNestingError,
    ContextDepthError,
    FilterArgumentError,
    LiquidError,
    LiquidSyntaxError,
    LocalNamespaceLimitError,
    LoopIterationLimitError,
    OutputStreamLimitError,
    ResourceLimitError,
)
from liquid.filter import sequence_filter
from liquid.tag import Tag
from liquid.token import TOKEN_EXPRESSION, TOKEN_TAG
from liquid.undefined import FalsyStrictUndefined

# Render limits (per template render; a snippet is its own render, except for time: a snippet
# rendered inside a template shares that template's deadline).
RENDER_SECONDS = 2.0  # wall time of one render; settings.ULAK_TEMPLATE_RENDER_SECONDS overrides
LOOP_ITERATION_LIMIT = 10_000  # loop iterations, nested loops multiplied
OUTPUT_LIMIT = 512 * 1024  # characters written by one template, or made by one filter
LOCAL_NAMESPACE_LIMIT = 256 * 1024  # approximate bytes held by assign/capture variables
CONTEXT_DEPTH_LIMIT = 20
SEQUENCE_LIMIT = LOOP_ITERATION_LIMIT  # items of a range or list handed to or made by a filter
NUMBER_BITS_LIMIT = 1024  # integers a filter may produce
MAX_SOURCE_LENGTH = 256 * 1024
CACHE_SIZE = 2000
PREVIEW_LINK = "#preview"

# Globals key holding the precomputed link URLs (a LinkSet: item access finds nothing in it and it
# prints as nothing, so templates reach the links through the tags only).
LINKS_KEY = "ulak:links"
LINK_TAGS = {
    "unsubscribe_url": "unsubscribe",
    "view_in_browser_url": "view_in_browser",
    "manage_subscription_preferences_url": "preferences",
}


class TemplateError(Exception):
    """A template that does not parse. `field` names the template, `line` where it fails."""

    def __init__(self, message: str, *, field: str | None = None, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.line = line

    def describe(self, *, with_field: bool = True) -> str:
        where = f"line {self.line}: " if self.line else ""
        prefix = f"{self.field}: " if with_field and self.field else ""
        return f"{prefix}{where}{self.message}"

    def __str__(self) -> str:
        return self.describe()


class RenderError(TemplateError):
    """A template that parsed but could not be rendered with the data it was given."""


# --- the environment -------------------------------------------------------------------------------

class GuardedUndefined(FalsyStrictUndefined):
    """Fails when output or filtered, but is false in `if`/`unless` and gives way to `default`."""

    force_liquid_default = True


class LinkSet:
    __slots__ = ("unsubscribe", "view_in_browser", "preferences")

    def __init__(self, *, unsubscribe: str, view_in_browser: str, preferences: str):
        self.unsubscribe = unsubscribe
        self.view_in_browser = view_in_browser
        self.preferences = preferences

    def __str__(self) -> str:
        return ""


class LinkNode(Node):
    __slots__ = ("link",)

    def __init__(self, token, link: str):
        super().__init__(token)
        self.link = link
        self.blank = False

    def __str__(self) -> str:
        return f"{{% {self.token.value} %}}"

    def render_to_output(self, context, buffer) -> int:
        links = context.get([LINKS_KEY], token=self.token, default=None)
        url = getattr(links, self.link) if isinstance(links, LinkSet) else PREVIEW_LINK
        return buffer.write(url)


def _link_tag(tag_name: str, link: str) -> type[Tag]:
    class LinkTag(Tag):
        name = tag_name
        block = False

        def parse(self, stream):
            token = stream.expect(TOKEN_TAG, value=tag_name)
            if stream.peek.kind == TOKEN_EXPRESSION:
                raise LiquidSyntaxError(f"{tag_name} takes no arguments", token=token)
            return LinkNode(token, link)

    LinkTag.__name__ = f"{tag_name.title().replace('_', '')}Tag"
    return LinkTag


class SandboxLimitError(ResourceLimitError):
    """A limit of Ulak's own (python-liquid has none for these)."""


class RenderTimeLimitError(SandboxLimitError):
    """The render's deadline passed."""


# --- time ------------------------------------------------------------------------------------------

# (deadline on time.monotonic(), the budget it was made from) of the render in progress, if any.
_deadline: ContextVar[tuple[float, float] | None] = ContextVar("ulak_template_deadline", default=None)


def render_seconds() -> float:
    return float(getattr(settings, "ULAK_TEMPLATE_RENDER_SECONDS", RENDER_SECONDS))


@contextmanager
def render_deadline(seconds: float | None = None):
    """Give the renders inside one shared time budget (default: render_seconds()). Nested, the
    earlier deadline holds, so a snippet never gets more time than the template using it."""
    seconds = render_seconds() if seconds is None else float(seconds)
    deadline = time.monotonic() + seconds
    outer = _deadline.get()
    if outer is not None and outer[0] <= deadline:
        yield
        return
    token = _deadline.set((deadline, seconds))
    try:
        yield
    finally:
        _deadline.reset(token)


def check_deadline() -> None:
    current = _deadline.get()
    if current is not None and time.monotonic() >= current[0]:
        raise RenderTimeLimitError(f"render took longer than {current[1]:g} s", token=None)


def _until_deadline(iterator):
    for item in iterator:
        check_deadline()
        yield item


class SandboxContext(RenderContext):
    @contextmanager
    def loop(self, namespace, forloop):
        # `for` and `tablerow` step through `forloop.it`: checking there checks every iteration.
        forloop.it = _until_deadline(forloop.it)
        with super().loop(namespace, forloop) as context:
            yield context


class SandboxTemplate(BoundTemplate):
    context_class = SandboxContext


# --- sizes -----------------------------------------------------------------------------------------

def _too_many_items(value) -> bool:
    """More than SEQUENCE_LIMIT items in a list, counting nested lists in full (list filters
    flatten them), without walking more than that."""
    count, pending = 0, [value]
    while pending:
        sequence = pending.pop()
        count += len(sequence)
        if count > SEQUENCE_LIMIT:
            return True
        pending.extend(item for item in sequence if isinstance(item, (list, tuple)))
    return False


def _output_size_of_replace(value, old="", new="", *_args, **_kwargs) -> int:
    value, old, new = str(value), str(old), str(new)
    count = len(value) + 1 if not old else value.count(old)
    return len(value) + count * (len(new) - len(old))


def _output_size_of_join(value, separator=" ", *_args, **_kwargs) -> int:
    if not isinstance(value, (list, tuple, range)):
        return 0
    return sum(len(str(item)) for item in value) + len(str(separator)) * max(len(value) - 1, 0)


def _output_size_of_concatenation(value, other="", *_args, **_kwargs) -> int:
    return len(str(value)) + len(str(other))


def _items_of_split(value, separator=None, *_args, **_kwargs) -> int:
    if not isinstance(value, str) or not isinstance(separator, (str, type(None))):
        return 0  # the filter converts other values; its result is checked afterwards
    if not separator:
        return len(value)
    if separator == " ":  # splits on runs of any whitespace
        return sum(map(str.isspace, value)) + 1
    return value.count(separator) + 1


# Filters whose output can be far larger than their input: checked before they run.
OUTPUT_SIZE = {
    "replace": _output_size_of_replace,
    "join": _output_size_of_join,
    "append": _output_size_of_concatenation,
    "prepend": _output_size_of_concatenation,
}
LIST_SIZE = {"split": _items_of_split}


def _refuse_output(size_of, args, kwargs, limit, error) -> None:
    try:
        too_big = size_of(*args, **kwargs) > limit
    except TypeError:
        too_big = False  # bad arguments: the filter itself says so
    if too_big:
        raise error


def _list_limit_error() -> SandboxLimitError:
    return SandboxLimitError(f"list limit reached (at most {SEQUENCE_LIMIT} items)", token=None)


def _guarded_filter(name: str, func):
    """Check the deadline, refuse huge ranges and lists (cheap to pass along, costly to join, sort
    or flatten), results far over the size limits (before a multiplying filter builds them) and
    huge integers."""
    output_size_of = OUTPUT_SIZE.get(name)
    list_size_of = LIST_SIZE.get(name)

    @functools.wraps(func)
    def guarded(*args, **kwargs):
        check_deadline()
        for value in (*args, *kwargs.values()):
            if isinstance(value, range) and len(value) > SEQUENCE_LIMIT:
                raise SandboxLimitError(f"range limit reached (at most {SEQUENCE_LIMIT} items)", token=None)
            if isinstance(value, (list, tuple)) and _too_many_items(value):
                raise _list_limit_error()
        if output_size_of is not None and args:
            _refuse_output(output_size_of, args, kwargs, OUTPUT_LIMIT,
                           OutputStreamLimitError("output stream limit reached", token=None))
        if list_size_of is not None and args:
            _refuse_output(list_size_of, args, kwargs, SEQUENCE_LIMIT, _list_limit_error())
        result = func(*args, **kwargs)
        if isinstance(result, int) and not isinstance(result, bool) and result.bit_length() > NUMBER_BITS_LIMIT:
            raise SandboxLimitError(f"number limit reached (at most {NUMBER_BITS_LIMIT} bits)", token=None)
        if isinstance(result, str) and len(result) > OUTPUT_LIMIT:
            raise OutputStreamLimitError("output stream limit reached", token=None)
        if isinstance(result, (list, tuple)) and _too_many_items(result):
            raise _list_limit_error()
        return result

    return guarded


# --- filters replaced: python-liquid's take quadratic time ------------------------------------------

_MISSING = object()


def _hashable(value):
    """A hashable stand-in for plain data, equal exactly when the values are equal."""
    if isinstance(value, Mapping):
        return ("mapping", frozenset((key, _hashable(item)) for key, item in value.items()))
    if isinstance(value, (list, tuple)):
        return ("list", tuple(_hashable(item) for item in value))
    return value


@sequence_filter
def uniq(sequence, key=None) -> list:
    """Liquid's `uniq` (first of each equal item, or of each equal `item[key]`) with a set instead
    of a list scan per item."""
    seen: set = set()
    seen_unhashable: list = []
    result = []
    for obj in sequence:
        item = obj
        if key is not None:
            try:
                item = obj[key]
            except (KeyError, IndexError):
                item = _MISSING
            except TypeError as err:
                raise FilterArgumentError(f"can't read property '{key}' of {obj}", token=None) from err
        try:
            marker = _hashable(item)
            if marker in seen:
                continue
            seen.add(marker)
        except TypeError:  # not plain data and not hashable
            if item in seen_unhashable:
                continue
            seen_unhashable.append(item)
        result.append(obj)
    return result


def _key_made_once(func):
    """python-liquid's `map` turns its key into a string once per item: a list key made that
    quadratic. The string is the same made once."""

    @functools.wraps(func)
    def map_(sequence, key, *args, **kwargs):
        if isinstance(key, (list, tuple, Mapping, range)):
            key = str(key)
        return func(sequence, key, *args, **kwargs)

    return map_


class SandboxEnvironment(Environment):
    template_class = SandboxTemplate
    loop_iteration_limit = LOOP_ITERATION_LIMIT
    output_stream_limit = OUTPUT_LIMIT
    local_namespace_limit = LOCAL_NAMESPACE_LIMIT
    context_depth_limit = CONTEXT_DEPTH_LIMIT

    def setup_tags_and_filters(self, *, extra: bool = False) -> None:
        super().setup_tags_and_filters(extra=extra)
        # No loader: there is nothing to include; snippets are `{{ snippets.name }}`.
        for name in ("include", "render"):
            self.tags.pop(name, None)
        for tag_name, link in LINK_TAGS.items():
            self.add_tag(_link_tag(tag_name, link))
        self.filters["uniq"] = uniq
        self.filters["map"] = _key_made_once(self.filters["map"])
        self.filters = {name: _guarded_filter(name, func) for name, func in self.filters.items()}


ENV = SandboxEnvironment(undefined=GuardedUndefined, strict_filters=True)


# --- errors ----------------------------------------------------------------------------------------

LIMIT_MESSAGES = {
    LoopIterationLimitError: f"loop limit reached (at most {LOOP_ITERATION_LIMIT} iterations, nested loops multiplied)",
    OutputStreamLimitError: f"output limit reached (at most {OUTPUT_LIMIT // 1024} KB per template)",
    LocalNamespaceLimitError: f"variable limit reached (assign/capture hold at most {LOCAL_NAMESPACE_LIMIT // 1024} KB)",
    ContextDepthError: "nesting limit reached",
    BlockNestingError: f"block nesting limit reached (at most {Environment.block_nesting_limit} blocks inside each other)",
}
_QUOTED_UNDEFINED = re.compile(r"^'([^']*)' is undefined$")


def _message(exc: LiquidError) -> str:
    message = str(exc.message if exc.message is not None else type(exc).__name__)
    for kind, text in LIMIT_MESSAGES.items():
        if isinstance(exc, kind):
            return text
    return _QUOTED_UNDEFINED.sub(r"\1 is undefined", message)


def _line(exc: LiquidError) -> int | None:
    try:
        context = exc.context()
    except ValueError:
        return None
    return context[0] if context else None


def syntax_error(exc: LiquidError, field: str | None) -> TemplateError:
    return TemplateError(_message(exc), field=field, line=_line(exc))


def render_failure(exc: Exception, field: str | None) -> RenderError:
    if isinstance(exc, LiquidError):
        return RenderError(_message(exc), field=field, line=_line(exc))
    # A value Python refuses (an integer too long to print, a bad operand): still the template's fault.
    return RenderError(f"{type(exc).__name__}: {exc}", field=field)


# --- parsing and the cache -------------------------------------------------------------------------

class TemplateCache:
    """A bounded LRU of parsed templates, shared by the threads of a process."""

    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            template = self._items.get(key)
            if template is not None:
                self._items.move_to_end(key)
            return template

    def put(self, key, template) -> None:
        with self._lock:
            self._items[key] = template
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __contains__(self, key) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


cache = TemplateCache(CACHE_SIZE)


def content_key(source: str) -> tuple:
    return ("inline", hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest())


def _parse(source: str, field: str | None):
    if len(source) > MAX_SOURCE_LENGTH:
        raise TemplateError(f"template longer than {MAX_SOURCE_LENGTH // 1024} KB", field=field)
    try:
        return ENV.from_string(source)
    except LiquidError as exc:
        raise syntax_error(exc, field) from None
    except RecursionError:
        raise TemplateError("template nests too deeply", field=field) from None


def parse(source: str, *, key: tuple | None = None, field: str | None = None):
    """The parsed template, from the cache when it holds `key` (kind, pk, version, field) or,
    without a key, the source's content hash. Raises TemplateError."""
    key = key or content_key(source)
    template = cache.get(key)
    if template is None:
        template = _parse(source, field)
        cache.put(key, template)
    return template


def validate(source: str, *, field: str | None = None) -> None:
    """Raise TemplateError if `source` is not a valid template (used on save): syntax errors, and
    filters that do not exist (which Liquid itself only notices when rendering)."""
    source = source or ""
    template = _parse(source, field)
    try:
        filters = template.analyze(include_partials=False).filters
    except (LiquidError, RecursionError):
        return  # the analysis is a courtesy; rendering reports what it finds
    for name, spans in filters.items():
        if name not in ENV.filters:
            line = spans[0].line_col(source)[0] if spans else None
            raise TemplateError(f"unknown filter '{name}'", field=field, line=line)


# --- rendering -------------------------------------------------------------------------------------

def plain(value, depth: int = 0):
    """`value` as JSON-like data (dict, list, str, int, float, bool, None) and nothing else."""
    if depth > 50:
        return None
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, Mapping):
        return {str(key): plain(item, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item, depth + 1) for item in value]
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    return str(value)


def render(template, data: Mapping, *, field: str | None = None) -> str:
    """Render a parsed template with `data` (already plain) within the render deadline (the
    enclosing render's, if any); raises RenderError."""
    try:
        with render_deadline():
            check_deadline()
            return template.render(data)
    except RenderError:
        raise  # a snippet's failure, already described
    except (LiquidError, ValueError, TypeError, LookupError, ArithmeticError, RecursionError) as exc:
        raise render_failure(exc, field) from None


def render_source(source: str, data: Mapping, *, key: tuple | None = None, field: str | None = None) -> str:
    """Parse (cached) and render; a syntax error is reported as a RenderError."""
    if not source:
        return ""
    try:
        template = parse(source, key=key, field=field)
    except RenderError:
        raise
    except TemplateError as exc:
        raise RenderError(exc.message, field=field, line=exc.line) from None
    return render(template, data, field=field)


def links_scope(*, unsubscribe: str, view_in_browser: str, preferences: str) -> dict:
    """The globals entry the link tags read; without it they print PREVIEW_LINK."""
    return {LINKS_KEY: LinkSet(unsubscribe=unsubscribe, view_in_browser=view_in_browser, preferences=preferences)}
