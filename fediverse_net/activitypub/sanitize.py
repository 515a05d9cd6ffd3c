"""The one HTML sanitizer for every HTML field we show or publish, remote or local.

Mastodon's allow-list (`app/lib/sanitize_config.rb`, `MASTODON_STRICT`; docs
`/spec/activitypub#sanitization`; protocol.md §5.2), applied with nh3 (ammonia):

* tags: p br span a del pre code em strong b i u ul ol li blockquote, and h1–h6 (Mastodon
  turns headings into `<strong>`; we keep them, they are harmless);
* attributes: `href rel class` on `a`, `class` on `span`; only microformat classes
  (`h-* p-* u-* dt-* e-*`) and `mention hashtag ellipsis invisible` survive;
* link schemes http https dat dweb ipfs ipns ssb gopher xmpp magnet gemini; relative links
  are dropped (in a remote document they would point at our server);
* every link gets `rel="nofollow noopener noreferrer"` and `target="_blank"`, whatever it said;
* a link whose text looks like a web address on another server than the one it goes to, or on an
  internationalised name, gets the real server appended to its text (`paypal.com (evil.example)`,
  `pаypal.com (xn--pypal-4ve.com)`): "link spoofing", security matrix row 28, as Mastodon's web
  client does. This adds text only, never markup, so the allow-list above stays the only one.

`script`, `style` and other active containers are removed with their content. Pure: no I/O.
"""

from __future__ import annotations

import html as html_lib
import re
from html.parser import HTMLParser
from typing import Final
from urllib.parse import urlsplit

import nh3

from fediverse_net.activitypub.handles import ascii_host

ALLOWED_TAGS: Final = frozenset(
    {
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
)
ALLOWED_ATTRIBUTES: Final = {"a": {"href", "class"}, "span": {"class"}}
LINK_SCHEMES: Final = frozenset(
    {"http", "https", "dat", "dweb", "ipfs", "ipns", "ssb", "gopher", "xmpp", "magnet", "gemini"}
)
# Removed together with everything inside them (the text of a <script> is never shown).
DROP_WITH_CONTENT: Final = frozenset(
    {
        "script",
        "style",
        "template",
        "iframe",
        "object",
        "embed",
        "svg",
        "math",
        "noscript",
        "title",
        "textarea",
        "select",
        "frameset",
        "noembed",
        "noframes",
    }
)
LINK_REL: Final = "nofollow noopener noreferrer"
CLASS_PREFIXES: Final = ("h-", "p-", "u-", "dt-", "e-")
CLASS_NAMES: Final = frozenset({"mention", "hashtag", "ellipsis", "invisible"})
# Attributes nh3 may add or keep besides ALLOWED_ATTRIBUTES: the forced link attributes.
_FORCED = {("a", "rel"), ("a", "target")}


def _allowed_class(name: str) -> bool:
    return name in CLASS_NAMES or (name.startswith(CLASS_PREFIXES) and len(name) <= 64)


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    """Keep only microformat classes; anything not explicitly expected is dropped."""
    if attribute == "class" and attribute in ALLOWED_ATTRIBUTES.get(tag, ()):
        kept = [name for name in value.split() if _allowed_class(name)]
        return " ".join(kept) if kept else None
    if attribute in ALLOWED_ATTRIBUTES.get(tag, ()) or (tag, attribute) in _FORCED:
        return value
    return None


_CLEANER: Final = nh3.Cleaner(
    tags=set(ALLOWED_TAGS),
    clean_content_tags=set(DROP_WITH_CONTENT),
    attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
    attribute_filter=_attribute_filter,
    strip_comments=True,
    link_rel=LINK_REL,
    set_tag_attribute_values={"a": {"target": "_blank"}},
    url_schemes=set(LINK_SCHEMES),
    url_relative="deny",
)


def _without_forced(tag: str, attribute: str, value: str) -> str | None:
    return None if (tag, attribute) in _FORCED else _attribute_filter(tag, attribute, value)


# First pass: the same allow-list, minus any incoming `rel`/`target`, so that `_CLEANER` always adds
# them itself, in the same order (otherwise cleaning clean output could reorder them).
_STRIP_FORCED: Final = nh3.Cleaner(
    tags=set(ALLOWED_TAGS),
    clean_content_tags=set(DROP_WITH_CONTENT),
    attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
    attribute_filter=_without_forced,
    strip_comments=True,
    link_rel=None,
    url_schemes=set(LINK_SCHEMES),
    url_relative="deny",
)


def sanitize_html(html: str) -> str:
    """Allow-listed HTML, safe to insert into a page as is (see the module docstring). Idempotent."""
    if not html:
        return ""
    return flag_spoofed_links(_CLEANER.clean(_STRIP_FORCED.clean(html)))


# nh3's serialisation is regular: every attribute is `name="value"` with `"` escaped inside, and a
# link never contains another link, so these patterns read its output exactly (not arbitrary HTML).
_ANCHOR: Final = re.compile(r'<a((?:\s+[a-z-]+="[^"]*")*)>(.*?)</a>', re.S)
_HREF: Final = re.compile(r'\shref="([^"]*)"')
_TAG: Final = re.compile(r"<[^>]*>")
_TEXT_ADDRESS: Final = re.compile(
    r"(?:[a-z][a-z0-9+.-]*://)?([^/?#\\:]+)(?::[0-9]{1,5})?(?:[/?#].*)?", re.I | re.S
)
_SPACE: Final = re.compile(r"\s")
_TRAILING: Final = ".,;:!?…)]}'\""


def _host_in_text(text: str) -> str | None:
    """The host a link text shows (`example.com`, `https://example.com/x`, `bücher.example`), if any."""
    if not text or len(text) > 2000 or "@" in text or "." not in text or _SPACE.search(text):
        return None
    match = _TEXT_ADDRESS.fullmatch(text)
    if match is None:
        return None
    host = match.group(1).rstrip(_TRAILING).lower()
    labels = host.split(".")
    if len(labels) < 2 or not all(labels):
        return None
    top = labels[-1]
    return host if (top.isalpha() and len(top) >= 2) or top.startswith("xn--") else None


def _same_site(shown: str, real: str) -> bool:
    """Equal, or one inside the other (`blog.example.com` is example.com's), ignoring `www.`."""
    shown, real = shown.removeprefix("www."), real.removeprefix("www.")
    return shown == real or real.endswith("." + shown) or shown.endswith("." + real)


def _flag_link(match: re.Match[str]) -> str:
    attributes, inner = match.group(1), match.group(2)
    href = _HREF.search(attributes)
    shown = _host_in_text(html_lib.unescape(_TAG.sub("", inner) if "<" in inner else inner).strip())
    if href is None or shown is None:
        return match.group(0)
    try:
        target = urlsplit(html_lib.unescape(href.group(1)))
        real_name = target.hostname
    except ValueError:
        return match.group(0)
    if target.scheme not in ("http", "https"):  # an address shown, a `magnet:` or `ipfs:` link taken
        return f"<a{attributes}>{inner} ({html_lib.escape(target.scheme)}:)</a>"
    if not real_name:
        return match.group(0)
    if shown.isascii() and real_name.isascii() and _same_site(shown, real_name):
        return match.group(0)  # the common, honest case: no IDNA work
    real = ascii_host(real_name)[0]
    if shown.isascii() and _same_site(shown, real):  # text in punycode, href in Unicode
        return match.group(0)
    return f"<a{attributes}>{inner} ({html_lib.escape(real)})</a>"


def flag_spoofed_links(html: str) -> str:
    """Append the real server to links whose text names another one (module docstring). Idempotent:
    the flagged text contains a space, and text with a space is never taken for an address."""
    return _ANCHOR.sub(_flag_link, html) if "<a" in html else html


_BLOCKS: Final = frozenset(
    {
        "p",
        "div",
        "blockquote",
        "pre",
        "ul",
        "ol",
        "li",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "tr",
        "section",
        "article",
        "header",
        "footer",
        "table",
        "dl",
        "dt",
        "dd",
        "figure",
        "hr",
    }
)
_SPACES = re.compile(r"[ \t\r\n\f\v]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in DROP_WITH_CONTENT:
            self.skipping += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCKS:
            self.parts.append("\n\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in DROP_WITH_CONTENT:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(_SPACES.sub(" ", data))


def plain_text(html: str) -> str:
    """The text of an HTML fragment: tags stripped, entities decoded, paragraphs as blank lines.

    The result is *text*, not HTML: templates escape it like any other string.
    """
    if not html:
        return ""
    collector = _TextCollector()
    collector.feed(html)
    collector.close()
    lines = "".join(collector.parts).split("\n")
    text = "\n".join(line.strip() for line in lines)
    return _BLANK_LINES.sub("\n\n", text).strip()


def truncate(text: str, limit: int, *, ellipsis: str = "…") -> str:
    """`text` cut to at most `limit` characters, at a word boundary when one is near the end."""
    if len(text) <= limit:
        return text
    if limit <= len(ellipsis):
        return text[: max(limit, 0)]
    cut = text[: limit - len(ellipsis)]
    space = cut.rfind(" ")
    if space >= len(cut) * 2 // 3:  # break at a word when it costs at most a third
        cut = cut[:space]
    return cut.rstrip() + ellipsis


# Bidirectional overrides/isolates and zero-width characters let a name spoof the text around it
# (security matrix row 28, CVE-2023-36462): names are plain text without them.
_SPOOFING_CHARS = dict.fromkeys(
    [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0x061C, 0xFEFF]
)


def clean_name(text: str, limit: int = 256) -> str:
    """A display name as one line of plain text: no control, bidi-override or zero-width chars."""
    text = text.translate(_SPOOFING_CHARS)
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(text.split())[:limit]
