"""Markdown written by members (bios, later posts) rendered to the HTML we store and federate."""

from __future__ import annotations

import functools
import importlib.util

from markdown_it import MarkdownIt

from fediverse_net.activitypub.sanitize import sanitize_html


@functools.cache
def _parser() -> MarkdownIt:
    # CommonMark with raw HTML off: `<script>` typed by a member is shown as text, never as markup.
    # Images are off (Mastodon shows none inline), so `![alt](url)` stays a plain link.
    # Bare URLs become links when linkify-it-py is installed (markdown-it-py[linkify]).
    linkify = importlib.util.find_spec("linkify_it") is not None
    parser = MarkdownIt("commonmark", {"html": False, "linkify": linkify}).disable("image")
    if linkify:
        parser.enable("linkify")
    return parser


def render_markdown(source: str) -> str:
    """Sanitized HTML for Markdown `source`; the same allow-list as remote HTML applies."""
    if not source.strip():
        return ""
    return sanitize_html(_parser().render(source)).strip()
