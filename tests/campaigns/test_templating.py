"""The sandboxed Liquid environment: strict undefined, guards, limits, sandbox, link tags, cache."""

import time
from collections.abc import Mapping

import pytest

from channels.content import templating
from channels.content.templating import RenderError, TemplateError

DATA = {
    "customer": {"first_name": "Ada", "plan": "pro", "tags": ["vip", "beta"], "address": {"city": "Izmir"},
                 "zero": 0, "nothing": None},
    "event": {"total": 42},
}


def render(source, data=DATA, **kwargs):
    return templating.render_source(source, data, field="body", **kwargs)


def render_error(source) -> RenderError:
    with pytest.raises(RenderError) as caught:
        render(source)
    return caught.value


def test_renders_variables_filters_and_tags():
    source = ("{{ customer.first_name | upcase }} {{ customer.address.city }} {{ customer.tags | join: ',' }} "
              "{{ customer.tags.size }} {{ customer.tags.first }} {% for t in customer.tags %}[{{ t }}]{% endfor %} "
              "{% assign x = event.total | plus: 1 %}{{ x }}")
    assert render(source) == "ADA Izmir vip,beta 2 vip [vip][beta] 43"


@pytest.mark.parametrize("source, reason", [
    ("{{ customer.last_name }}", "customer.last_name is undefined"),
    ("{{ customer.address.street }}", "customer.address.street is undefined"),
    ("{{ nobody }}", "nobody is undefined"),
    ("{{ customer.last_name | upcase }}", "customer.last_name is undefined"),
    ("{{ 'x' | append: customer.last_name }}", "customer.last_name is undefined"),
    ("{% for t in customer.missing %}{{ t }}{% endfor %}", "customer.missing is undefined"),
])
def test_a_missing_variable_fails_with_its_name(source, reason):
    error = render_error(source)
    assert error.message == reason
    assert error.field == "body"
    assert error.line == 1
    assert str(error) == f"body: line 1: {reason}"


def test_the_error_names_the_line():
    error = render_error("<p>Hi</p>\n<p>\n{{ customer.nickname }}</p>")
    assert error.line == 3
    assert str(error) == "body: line 3: customer.nickname is undefined"


@pytest.mark.parametrize("source, expected", [
    ("{{ customer.last_name | default: 'friend' }}", "friend"),
    ("{{ nobody.name | default: 'friend' }}", "friend"),
    ("{{ customer.first_name | default: 'friend' }}", "Ada"),
    ("{{ customer.nothing | default: 'none' }}", "none"),
    ("{{ customer.zero | default: 5 }}", "0"),
    ("{% if customer.last_name %}{{ customer.last_name }}{% else %}no last name{% endif %}", "no last name"),
    ("{% unless customer.last_name %}none{% endunless %}", "none"),
    ("{% if customer.last_name == 'x' %}x{% else %}not x{% endif %}", "not x"),
    ("{% if customer.last_name and customer.first_name %}both{% else %}one{% endif %}", "one"),
    ("{% if customer.first_name %}{{ customer.first_name }}{% endif %}", "Ada"),
    ("{% case customer.last_name %}{% when 'a' %}a{% else %}other{% endcase %}", "other"),
])
def test_default_and_if_guard_a_missing_variable(source, expected):
    assert render(source) == expected


def test_nil_values_render_empty():
    assert render("[{{ customer.nothing }}]") == "[]"


# --- sandbox ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("source, reason", [
    ("{{ customer.__class__ }}", "customer.__class__ is undefined"),
    ("{{ customer.first_name.__class__ }}", "customer.first_name.__class__ is undefined"),
    ("{{ customer.items }}", "customer.items is undefined"),
    ("{{ customer.tags.__len__ }}", "customer.tags.__len__ is undefined"),
    ("{{ customer.keys }}", "customer.keys is undefined"),
    ("{{ settings.SECRET_KEY }}", "settings is undefined"),
    ("{{ request }}", "request is undefined"),
    ("{% for i in (1..2) %}{{ forloop.__class__ }}{% endfor %}", "forloop.__class__ is undefined"),
])
def test_templates_cannot_reach_python_objects_or_settings(source, reason):
    assert render_error(source).message == reason


def test_guarded_python_internals_give_nothing():
    assert render("[{{ customer.__class__ | default: '' }}][{{ customer.__dict__ | default: '' }}]") == "[][]"


def test_plain_turns_objects_into_strings():
    import datetime
    import decimal

    class Secret:
        def __str__(self):
            return "secret-object"

    data = templating.plain({"a": Secret(), "b": decimal.Decimal("1.5"), "c": datetime.date(2025, 1, 2),
                             "d": (1, {"e": Secret()}), 3: "three"})
    assert data == {"a": "secret-object", "b": 1.5, "c": "2025-01-02", "d": [1, {"e": "secret-object"}],
                    "3": "three"}


def test_include_and_render_are_not_available():
    for source in ("{% include 'x' %}", "{% render 'x' %}"):
        with pytest.raises(TemplateError, match="unexpected tag"):
            templating.validate(source, field="body")


# --- limits ----------------------------------------------------------------------------------------

def test_loop_iteration_limit():
    assert len(render("{% for i in (1..100) %}{% for j in (1..100) %}x{% endfor %}{% endfor %}")) == 10_000
    with pytest.raises(RenderError, match=r"loop limit reached \(at most 10000 iterations"):
        render("{% for i in (1..101) %}{% for j in (1..100) %}x{% endfor %}{% endfor %}")
    with pytest.raises(RenderError, match="loop limit reached"):
        render("{% for i in (1..1000000000) %}{% endfor %}")


def test_output_size_limit():
    ok = "{% for i in (1..5000) %}" + "x" * 100 + "{% endfor %}"  # 500,000 characters
    assert len(render(ok)) == 500_000
    too_much = "{% for i in (1..6000) %}" + "x" * 100 + "{% endfor %}"
    with pytest.raises(RenderError, match=r"output limit reached \(at most 512 KB per template\)"):
        render(too_much)


def test_capture_counts_towards_the_output_limit():
    source = "{% assign s = 'xxxxxxxxxx' %}{% for i in (1..20) %}{% capture s %}{{ s }}{{ s }}{% endcapture %}{% endfor %}"
    with pytest.raises(RenderError, match="limit reached"):
        render(source)


def test_variable_size_limit():
    source = "{% assign s = 'xxxxxxxxxx' %}{% for i in (1..20) %}{% assign s = s | append: s %}{% endfor %}"
    with pytest.raises(RenderError, match=r"variable limit reached"):
        render(source)


def test_filters_that_multiply_their_input_are_bounded_before_they_run():
    data = {"customer": {"bio": "a" * 30_000, "short_bio": "a" * 6_000}}
    with pytest.raises(RenderError, match="output limit reached"):
        render("{{ customer.bio | replace: 'a', '" + "b" * 100 + "' }}", data)
    with pytest.raises(RenderError, match="output limit reached"):
        render("{% assign parts = customer.short_bio | split: '' %}{{ parts | join: '" + "-" * 100 + "' }}", data)
    with pytest.raises(RenderError, match="output limit reached"):
        render("{{ customer.bio | replace: '', '" + "b" * 20 + "' }}", data)
    assert render("{{ customer.bio | replace: 'a', 'bb' | size }}", data) == "60000"
    assert render("{{ 'a,b' | split: ',' | join: ' and ' }}") == "a and b"


def test_huge_ranges_and_numbers_are_refused():
    with pytest.raises(RenderError, match=r"range limit reached \(at most 10000 items\)"):
        render("{{ (1..100000000) | join: ',' }}")
    with pytest.raises(RenderError, match="number limit reached"):
        render("{% assign n = 99999999 %}{% for i in (1..20) %}{% assign n = n | times: n %}{% endfor %}{{ n }}")
    assert render("{{ (1..5) | join: ',' }}") == "1,2,3,4,5"


def test_block_nesting_limit():
    deep = "{% if true %}" * 31 + "x" + "{% endif %}" * 31
    with pytest.raises(TemplateError, match=r"block nesting limit reached \(at most 30 blocks"):
        templating.validate(deep, field="body")
    assert render("{% if true %}" * 20 + "x" + "{% endif %}" * 20) == "x"


def test_python_errors_from_values_are_render_errors():
    with pytest.raises(RenderError, match="body: "):
        render("{{ 10 | divided_by: 0 }}")


# --- syntax ----------------------------------------------------------------------------------------

def test_validate_reports_syntax_errors_with_field_and_line():
    with pytest.raises(TemplateError) as caught:
        templating.validate("<p>\n{% if customer.vip %}\nVIP\n{% endfor %}", field="body")
    assert caught.value.field == "body"
    assert caught.value.line == 4
    assert str(caught.value).startswith("body: line 4: ")
    with pytest.raises(TemplateError, match="unknown filter 'shout'"):
        templating.validate("{{ customer.first_name | shout }}", field="subject")
    with pytest.raises(TemplateError, match="expected '}}'"):
        templating.validate("Hi {{ customer.first_name", field="subject")
    templating.validate("{{ customer.first_name | default: 'x' }} {% unsubscribe_url %}", field="body")


def test_a_syntax_error_at_render_time_is_a_render_error():
    with pytest.raises(RenderError, match="body: line 1: "):
        render("{% if %}x{% endif %}")


# --- link tags -------------------------------------------------------------------------------------

def test_link_tags_print_the_links_given():
    links = templating.links_scope(unsubscribe="https://u", view_in_browser="https://v", preferences="https://p")
    source = ("{% unsubscribe_url %}|{% view_in_browser_url %}|{% manage_subscription_preferences_url %}|"
              "{% liquid\nunsubscribe_url\n%}")
    assert render(source, {**DATA, **links}) == "https://u|https://v|https://p|https://u"


def test_link_tags_print_a_placeholder_without_links():
    assert render("{% unsubscribe_url %} {% view_in_browser_url %} {% manage_subscription_preferences_url %}") == \
        "#preview #preview #preview"


def test_link_tags_take_no_arguments_and_links_are_not_data():
    with pytest.raises(TemplateError, match="unsubscribe_url takes no arguments"):
        templating.validate("{% unsubscribe_url 'x' %}")
    links = templating.links_scope(unsubscribe="https://u", view_in_browser="https://v", preferences="https://p")
    assert render("[{{ ['ulak:links'] }}]", {**DATA, **links}) == "[]"


# --- cache -----------------------------------------------------------------------------------------

def test_parsed_templates_are_cached_by_key_and_version():
    key = ("transactional", 1, 1, "body")
    first = templating.parse("v1 {{ customer.first_name }}", key=key)
    assert templating.parse("ignored: same key", key=key) is first
    second = templating.parse("v2 {{ customer.first_name }}", key=("transactional", 1, 2, "body"))
    assert second is not first
    assert templating.render(second, DATA) == "v2 Ada"


def test_inline_templates_are_cached_by_content():
    first = templating.parse("Hello {{ customer.first_name }}")
    assert templating.parse("Hello {{ customer.first_name }}") is first
    assert templating.parse("Hello {{ customer.plan }}") is not first


def test_the_cache_is_bounded():
    cache = templating.TemplateCache(3)
    for i in range(5):
        cache.put(i, f"t{i}")
    assert len(cache) == 3 and 0 not in cache and 4 in cache
    cache.get(2)
    cache.put(5, "t5")
    assert 2 in cache and 3 not in cache


# --- time and size of one render -------------------------------------------------------------------

def _letters(n):
    return "".join(chr(97 + (i * 7919) % 26) for i in range(n))


WORDS = [f"w{(i * 7919) % 10_000:05d}" for i in range(10_000)]  # 10,000 distinct, unsorted


@pytest.fixture
def budget(settings):
    """A short render budget, so tests of the deadline take a fraction of a second."""
    settings.ULAK_TEMPLATE_RENDER_SECONDS = 0.05
    return settings


def test_the_reviewers_template_fails_fast_with_a_named_limit():
    data = {"customer": {"bio": _letters(160_000)}}
    source = "{% for i in (1..100) %}{% assign n = customer.bio | split: '' | sort | size %}{% endfor %}{{ n }}"
    started = time.monotonic()
    with pytest.raises(RenderError, match=r"list limit reached \(at most 10000 items\)"):
        render(source, data)
    assert time.monotonic() - started < 1


def test_a_slow_template_within_the_size_limits_stops_at_the_default_deadline(settings):
    if hasattr(settings, "ULAK_TEMPLATE_RENDER_SECONDS"):
        del settings.ULAK_TEMPLATE_RENDER_SECONDS
    data = {"customer": {"bio": _letters(10_000)}}  # split and sort each take ~8 ms: ~8 s in all
    source = "{% for i in (1..1000) %}{% assign n = customer.bio | split: '' | sort | size %}{% endfor %}{{ n }}"
    started = time.monotonic()
    with pytest.raises(RenderError) as caught:
        render(source, data)
    assert 2 <= time.monotonic() - started < 4
    assert caught.value.message == "render took longer than 2 s"
    assert caught.value.field == "body"


def test_loop_iterations_check_the_deadline(budget):
    data = {"customer": {"words": WORDS}}  # no filter: only the loop can notice
    source = ("{% for i in (1..100) %}{% for j in (1..100) %}{% if customer.words contains 'none' %}x{% endif %}"
              "{% endfor %}{% endfor %}")
    started = time.monotonic()
    with pytest.raises(RenderError, match=r"^body: (line \d+: )?render took longer than 0.05 s$"):
        render(source, data)
    assert time.monotonic() - started < 0.5
    assert render("{% for i in (1..3) %}{{ i }}{% endfor %}") == "123"  # the next render has its own budget


def test_filters_check_the_deadline(budget):
    data = {"customer": {"words": WORDS}}  # no loop: only the filters can notice
    source = "{% assign s = customer.words | sort_natural %}" * 200
    started = time.monotonic()
    with pytest.raises(RenderError, match="render took longer than 0.05 s"):
        render(source, data)
    assert time.monotonic() - started < 0.5


class NestedRender(Mapping):
    """Like `snippets`: renders a template of its own while the outer template renders."""

    def __init__(self, pause):
        self.pause = pause

    def __getitem__(self, name):
        time.sleep(self.pause)
        return templating.render_source("{% for i in (1..2) %}{{ i }}{% endfor %}", {}, field=f"snippets.{name}")

    def __iter__(self):
        return iter(["inner"])

    def __len__(self):
        return 1


def test_a_render_inside_a_render_shares_the_outer_deadline(budget):
    assert render("{{ snippets.inner }}", {"snippets": NestedRender(0)}) == "12"
    with pytest.raises(RenderError, match="^snippets.inner: render took longer than 0.05 s$"):
        render("{{ snippets.inner }}", {"snippets": NestedRender(0.1)})


def test_an_explicit_budget_covers_every_render_inside_it(settings):
    settings.ULAK_TEMPLATE_RENDER_SECONDS = 60
    with templating.render_deadline(0.05):
        assert render("{% for i in (1..2) %}{{ i }}{% endfor %}") == "12"
        time.sleep(0.1)
        with pytest.raises(RenderError, match="render took longer than 0.05 s"):
            render("{% for i in (1..2) %}{{ i }}{% endfor %}")
    assert render("{% for i in (1..2) %}{{ i }}{% endfor %}") == "12"


def test_lists_made_by_filters_are_bounded():
    data = {"customer": {"bio": "a" * 10_000, "longer": "a" * 10_001, "words": WORDS, "csv": ",".join(["x"] * 10_001)}}
    assert render("{{ customer.bio | split: '' | size }}", data) == "10000"
    assert render("{{ customer.words | sort | first }} {{ customer.words | sort | last }}", data) == "w00000 w09999"
    for source in ("{{ customer.longer | split: '' | size }}",
                   "{{ customer.csv | split: ',' | size }}",
                   "{{ customer.words | concat: customer.words | size }}",
                   "{% assign few = customer.words | slice: 0, 6000 %}{{ few | concat: few | size }}"):
        with pytest.raises(RenderError, match=r"list limit reached \(at most 10000 items\)"):
            render(source, data)


def test_a_list_too_long_for_a_filter_is_refused_before_the_filter_runs():
    mixed = [1, "a"] * 5_001  # sorting it would fail with "can't sort sequence"
    with pytest.raises(RenderError, match=r"list limit reached \(at most 10000 items\)"):
        render("{{ trigger.items | sort | first }}", {"trigger": {"items": mixed}})
    nested = [list(range(200)) for _ in range(60)]  # filters flatten nested lists: 12,000 items
    with pytest.raises(RenderError, match=r"list limit reached \(at most 10000 items\)"):
        render("{{ trigger.items | uniq | size }}", {"trigger": {"items": nested}})
    with pytest.raises(RenderError, match="can't sort sequence"):  # what running the sort would have said
        render("{{ trigger.items | sort | first }}", {"trigger": {"items": mixed[:10]}})


def test_strings_made_by_filters_are_bounded():
    data = {"customer": {"bio": "a" * 300_000, "html": "<" * 150_000}}
    for source in ("{{ customer.bio | append: customer.bio | size }}",
                   "{{ customer.bio | prepend: customer.bio | size }}",
                   "{{ customer.bio | replace_first: 'a', customer.bio | size }}",
                   "{{ customer.html | escape | size }}"):
        with pytest.raises(RenderError, match="output limit reached"):
            render(source, data)
    assert render("{{ customer.bio | append: 'b' | size }}", data) == "300001"


def test_uniq_takes_linear_time_and_keeps_liquids_meaning():
    from liquid.builtin.filters.array import uniq as liquid_uniq

    started = time.monotonic()
    assert render("{{ customer.words | uniq | size }}", {"customer": {"words": WORDS[:8_000] + WORDS[:2_000]}}) == "8000"
    assert time.monotonic() - started < 0.5
    ours = templating.ENV.filters["uniq"]
    for sequence, key in [
        ([1, 1.0, True, "1", None, None, "a", "a"], None),
        ([{"a": 1}, {"a": 1.0}, {"a": [1, 2]}, {"a": [1, 2]}, {"b": {"c": 1}}, {"b": {"c": 1}}, [3, [4]], [3, [4]]], None),
        ([{"k": 1, "n": "x"}, {"k": 1, "n": "y"}, {"k": [1]}, {"k": [1]}, {"n": "no k"}, {"n": "no k either"}], "k"),
        ("abc", None),
        ({"a": 1}, None),
    ]:
        assert ours(sequence, key) == liquid_uniq(sequence, key)


def test_map_with_a_list_for_a_key_takes_linear_time():
    data = {"customer": {"words": WORDS}}
    started = time.monotonic()
    assert render("{{ customer.words | map: customer.words | size }}", data) == "10000"
    assert time.monotonic() - started < 0.5


def test_lookup_errors_inside_filters_are_render_errors():
    with pytest.raises(RenderError, match="^body: (line 1: )?IndexError"):
        render("{{ 'abc' | compact: 5 }}")
    assert render("{{ 'abc' | uniq: 5 }}") == "abc"  # an item without the key, as for a mapping
