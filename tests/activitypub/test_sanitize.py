"""The one HTML sanitizer: Mastodon's allow-list, security-matrix row 26, and a property test."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fediverse_net.activitypub.sanitize import plain_text, sanitize_html, truncate
from fediverse_net.services.markup import render_markdown

REL = 'rel="nofollow noopener noreferrer"'


ALLOWED = {
    "p",
    "br",
    "span",
    "a",
    "del",
    "pre",
    "code",
    "em",
    "strong",
    "b",
    "i",
    "u",
    "ul",
    "ol",
    "li",
    "blockquote",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
}


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))


def _unsafe(html: str) -> list[str]:
    """What would be active in a browser: `<script`, on* attributes, javascript: (or other
    non-allow-listed) URLs in attributes, tags or attributes off the allow-list."""
    problems = []
    if "<script" in html.lower():
        problems.append("script tag")
    if re.search(r"<[^>]*\son[a-z]*\s*=", html.lower()):
        problems.append("on* attribute")
    parser = _Tags()
    parser.feed(html)
    for tag, attrs in parser.tags:
        if tag not in ALLOWED:
            problems.append(f"tag {tag}")
        for name, value in attrs:
            squeezed = re.sub(r"[\x00-\x20]", "", (value or "")).lower()
            if "javascript:" in squeezed or "data:" in squeezed:
                problems.append(f"URL in {name}")
            if name not in {"href", "class", "rel", "target"}:
                problems.append(f"attribute {name}")
    return problems


# Security matrix row 26: only allow-listed tags, attributes, schemes and classes survive.
@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ("<script>alert(1)</script>hello", "hello"),
        ("<img src=x onerror=alert(1)>", ""),
        ('<a href="javascript:alert(1)">x</a>', f'<a target="_blank" {REL}>x</a>'),
        ('<a href=" jav&#x09;ascript:alert(1)">x</a>', f'<a target="_blank" {REL}>x</a>'),
        ('<a href="JaVaScRiPt:alert(1)">x</a>', f'<a target="_blank" {REL}>x</a>'),
        ("<svg><animate onbegin=alert(1) attributeName=x dur=1s></animate></svg>after", "after"),
        ("<style>body{display:none}</style>text", "text"),
        ('<iframe src="https://evil.example/"></iframe>text', "text"),
        ('<form action="https://evil.example/"><input name="p"><button>Go</button></form>', "Go"),
        ('<a href="data:text/html;base64,PHNjcmlwdD4=">d</a>', f'<a target="_blank" {REL}>d</a>'),
        (
            '<a class="u-url mention evil" href="https://mastodon.example/@bob">@bob</a>',
            f'<a class="u-url mention" href="https://mastodon.example/@bob" target="_blank" {REL}>@bob</a>',
        ),
        ('<span class="h-card big-red">x</span>', '<span class="h-card">x</span>'),
        ('<span class="evil">x</span>', "<span>x</span>"),
        ('<p style="color:red" onclick="x()" id="a">p</p>', "<p>p</p>"),
        (
            '<a href="https://x.example/" rel="me" target="_self">x</a>',
            f'<a href="https://x.example/" target="_blank" {REL}>x</a>',
        ),
        ('<a href="/relative">r</a>', f'<a target="_blank" {REL}>r</a>'),
        ("<!-- <script>x</script> -->c", "c"),
        ("<math><mi xlink:href=javascript:alert(1)>m</mi></math>ok", "ok"),
    ],
)
def test_hostile_html_is_reduced_to_the_allow_list(payload, expected):
    assert sanitize_html(payload) == expected


def test_mastodon_note_content_survives_unchanged_but_for_forced_link_attributes():
    content = (
        '<p><span class="h-card" translate="no"><a href="https://events.example/groups/hikers" '
        'class="u-url mention">@<span>hikers</span></a></span> Who is in for Saturday? '
        '<a href="https://mastodon.example/tags/hiking" class="mention hashtag" rel="tag">'
        "#<span>hiking</span></a>"
        '</p><p>Second <strong>line</strong><br>break <a href="https://example.com/long/path" '
        'rel="nofollow noopener" target="_blank"><span class="invisible">https://</span>'
        '<span class="ellipsis">example.com/long</span><span class="invisible">/path</span></a></p>'
    )
    cleaned = sanitize_html(content)
    assert 'class="u-url mention"' in cleaned
    assert 'class="mention hashtag"' in cleaned
    assert '<span class="invisible">https://</span>' in cleaned
    assert '<span class="ellipsis">example.com/long</span>' in cleaned
    assert "<strong>line</strong><br>break" in cleaned
    assert 'translate="no"' not in cleaned
    assert 'rel="tag"' not in cleaned
    assert cleaned.count(REL) == 3


@pytest.mark.parametrize("scheme", ["http", "https", "gemini", "xmpp", "magnet", "ipfs", "gopher"])
def test_allowed_link_schemes_are_kept(scheme):
    assert f'href="{scheme}://x.example/a"' in sanitize_html(f'<a href="{scheme}://x.example/a">a</a>')


@pytest.mark.parametrize("scheme", ["vbscript", "file", "ftp", "data", "blob", "mailto"])
def test_other_link_schemes_are_dropped(scheme):
    assert "href" not in sanitize_html(f'<a href="{scheme}:x.example/a">a</a>')


def test_allowed_structure_is_kept():
    html = (
        "<h2>T</h2><blockquote><p><em>a</em> <b>b</b> <i>c</i> <u>d</u> <del>e</del></p></blockquote>"
        "<ul><li>1</li></ul><ol><li>2</li></ol><pre><code>x &lt; y</code></pre>"
    )
    assert sanitize_html(html) == html


def test_empty_input():
    assert sanitize_html("") == ""
    assert plain_text("") == ""


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "<script>",
                "</script>",
                "<a href='",
                "javascript:",
                "java\tscript:",
                "&#106;avascript:",
                "'>",
                '"',
                "<img src=x ",
                "onerror=",
                " onload=",
                "alert(1)",
                "<svg ",
                "onbegin=",
                ">",
                "<p>",
                "</p>",
                "<span class='",
                "u-url evil",
                "<style>",
                "<iframe ",
                "<!--",
                "-->",
                "<",
                "&lt;script&gt;",
                '<a href="https://x.example/" ',
                "on",
                "click=",
                "/",
                " ",
                "x",
            ]
        )
        | st.text(max_size=8),
        max_size=40,
    ).map("".join)
)
def test_sanitized_output_never_contains_active_content(html):
    cleaned = sanitize_html(html)
    assert _unsafe(cleaned) == [], cleaned
    # Idempotent: sanitizing twice changes nothing.
    assert sanitize_html(cleaned) == cleaned


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_rendered_markdown_never_contains_active_content(source):
    assert _unsafe(render_markdown(source)) == []


def test_markdown_bio_is_rendered_and_hostile_bits_removed():
    html = render_markdown(
        "Hi **there**, see [my site](https://me.example) and [x](javascript:alert(1))\n\n"
        "<script>alert(1)</script> <img src=x onerror=alert(1)>"
    )
    assert "<strong>there</strong>" in html
    assert f'<a href="https://me.example" target="_blank" {REL}>my site</a>' in html
    assert _unsafe(html) == []
    # Raw HTML typed in Markdown is shown as text, escaped.
    assert "&lt;script&gt;" in html


def test_plain_text_strips_tags_and_decodes_entities():
    html = "<p>Hello &amp; <b>welcome</b></p><p>line one<br>line two</p><script>alert(1)</script>"
    assert plain_text(html) == "Hello & welcome\n\nline one\nline two"


def test_plain_text_of_text_that_looks_like_html_is_text():
    assert plain_text("<p>&lt;script&gt;</p>") == "<script>"


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 10, "short"),
        ("hello wonderful world", 16, "hello wonderful…"),
        ("abcdefghij", 5, "abcd…"),
        ("abc", 1, "a"),
        ("abc", 0, ""),
    ],
)
def test_truncate(text, limit, expected):
    assert truncate(text, limit) == expected
    assert len(truncate(text, limit)) <= max(limit, 0)


@pytest.mark.parametrize(
    "html",
    [
        '<a href="javascript:x">a</a>',
        "<img src=x>",
        '<p onclick="x">p</p>',
        "<script>x</script>",
        '<a href=" java\tscript:x">a</a>',
    ],
)
def test_the_property_checker_itself_catches_active_content(html):
    assert _unsafe(html)


def test_C28_display_names_lose_bidi_overrides_and_zero_width_characters():
    from fediverse_net.activitypub.sanitize import clean_name

    assert clean_name("adm\u202ein\u200b  \u2066x\u2069\n") == "admin x"
    assert clean_name("Аlice") == "Аlice"  # confusable letters are left as typed


# --- C28: link text that names another server ------------------------------------------------------

ATTRS = f'target="_blank" {REL}'


@pytest.mark.parametrize(
    ("href", "text", "shown"),
    [
        ("https://evil.example/login", "paypal.com", "paypal.com (evil.example)"),
        ("https://evil.example/login", "https://paypal.com/login", "https://paypal.com/login (evil.example)"),
        ("https://paypal.com.evil.net/", "paypal.com", "paypal.com (paypal.com.evil.net)"),
        ("https://evil.example/", "www.paypal.com…", "www.paypal.com… (evil.example)"),
        # An internationalised look-alike (Cyrillic а) is revealed even when it is the real target.
        ("https://xn--pypal-4ve.com/", "p\u0430ypal.com", "p\u0430ypal.com (xn--pypal-4ve.com)"),
        ("magnet:?xt=urn:x", "ubuntu.com", "ubuntu.com (magnet:)"),
        # Honest links are left alone: same host, www., a subdomain, no address in the text.
        ("https://paypal.com/x", "https://paypal.com/login", "https://paypal.com/login"),
        ("https://www.paypal.com/x", "paypal.com", "paypal.com"),
        ("https://help.paypal.com/x", "paypal.com/help", "paypal.com/help"),
        ("https://evil.example/", "click here", "click here"),
        ("https://evil.example/", "3.14", "3.14"),
        ("https://m.example/@alice", "@alice@m.example", "@alice@m.example"),
    ],
)
def test_C28_link_text_naming_another_server_shows_the_real_one(href, text, shown):
    cleaned = sanitize_html(f'<p><a href="{href}">{text}</a></p>')
    assert cleaned == f'<p><a href="{href.replace("&", "&amp;")}" {ATTRS}>{shown}</a></p>'
    assert sanitize_html(cleaned) == cleaned  # flagged once, never twice


def test_C28_mastodon_link_markup_is_read_through_its_spans():
    """Mastodon hides `https://` and the URL's tail in spans: the text is still the whole URL."""

    def link(href: str) -> str:
        return (
            f'<a href="{href}"><span class="invisible">https://</span>'
            '<span class="ellipsis">paypal.com/a/very/long/pa</span><span class="invisible">th</span></a>'
        )

    honest = sanitize_html(link("https://paypal.com/a/very/long/path"))
    assert "(" not in honest
    lying = sanitize_html(link("https://evil.example/a/very/long/path"))
    assert lying.endswith('<span class="invisible">th</span> (evil.example)</a>')
    assert _unsafe(lying) == []


def test_C28_hostile_attribute_values_do_not_confuse_the_link_reader():
    cleaned = sanitize_html('<a href="https://evil.example/?q=&quot;>x" class="u-url">paypal.com</a>')
    assert cleaned.endswith(">paypal.com (evil.example)</a>")
    assert _unsafe(cleaned) == []
