"""Security matrix C28 for remote actors: handles that impersonate, and links whose text lies.

A remote server picks its users' `preferredUsername` and its own (possibly internationalised)
name. Pages show IDN hosts as punycode, mark user names with look-alike, invisible or bidi
characters with a visible "⚠ unusual characters", and never emit the raw control characters
(`activitypub/handles.py`, the `handle` and `username` filters). Link text naming another server
than the link's gets the real one appended (`sanitize.flag_spoofed_links`). Local handles:
`tests/safety/test_matrix.py::test_C28_local_handles_refuse_confusables_and_bidi_controls`.
"""

from __future__ import annotations

import re

import pytest

from fediverse_net.activitypub.handles import (
    BAD_HOST,
    HIDDEN_CHARACTERS,
    TOO_LONG,
    UNUSUAL_CHARACTERS,
    ascii_host,
    display_handle,
    display_username,
)
from fediverse_net.db.models import Follow
from fediverse_net.services.remote_actors import resolve_actor
from tests.safety.test_matrix import ALICE, PUBLIC, active_markup, create_of

pytestmark = pytest.mark.anyio

# Bidi embeddings/overrides/isolates, zero-width characters, BOM: never in a page, whoever sent them.
RAW_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069\u200b-\u200f\u061c\ufeff\u0000-\u0008]")


# --- the pure function ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "host", "text", "warnings", "idn"),
    [
        ("alice", "remote.example", "@alice@remote.example", (), False),
        ("Gargron", "mastodon.social", "@Gargron@mastodon.social", (), False),
        ("first.last-1_x", "Remote.Example:8443", "@first.last-1_x@remote.example:8443", (), False),
        ("x", "[::1]:8000", "@x@[::1]:8000", (), False),
        # Cyrillic а (U+0430) looks like Latin a.
        ("\u0430dmin", "remote.example", "@\u0430dmin@remote.example", (UNUSUAL_CHARACTERS,), False),
        # A right-to-left override would show "nimda" reversed as "admin".
        ("\u202enimda", "remote.example", "@\ufffdnimda@remote.example", (HIDDEN_CHARACTERS,), False),
        ("ad\u200dmin", "remote.example", "@ad\ufffdmin@remote.example", (HIDDEN_CHARACTERS,), False),
        ("ad min", "remote.example", "@ad\ufffdmin@remote.example", (HIDDEN_CHARACTERS,), False),
        ("", "remote.example", "@\ufffd@remote.example", (UNUSUAL_CHARACTERS,), False),
        # Internationalised names in punycode, as httpx dials them.
        ("bob", "bücher.example", "@bob@xn--bcher-kva.example", (), True),
        ("bob", "p\u0430ypal.com", "@bob@xn--pypal-4ve.com", (), True),
        ("bob", "xn--pypal-4ve.com", "@bob@xn--pypal-4ve.com", (), True),
        # Not a valid name at all: still ASCII, and flagged.
        ("bob", "evil\u202e.com", "@bob@xn--evil-yd7a.com", (BAD_HOST,), True),
        ("bob", "ev\x01il.com", "@bob@ev?il.com", (BAD_HOST,), False),
    ],
)
def test_C28_display_handle(username, host, text, warnings, idn):
    shown = display_handle(username, host)
    assert (shown.text, shown.warnings, shown.idn) == (text, warnings, idn)
    assert shown.unusual == bool(warnings)
    assert not RAW_CONTROLS.search(shown.text)
    assert shown.host.isascii()


def test_C28_long_user_names_are_cut_and_flagged():
    shown = display_handle("a" * 200, "remote.example")
    assert shown.warnings == (TOO_LONG,)
    assert shown.username == "a" * 64 + "…"
    assert display_username("b" * 64) == "b" * 64


def test_C28_ascii_host_keeps_ports_and_reports_idn():
    assert ascii_host("BÜCHER.example:8000") == ("xn--bcher-kva.example:8000", True, True)
    assert ascii_host("remote.example") == ("remote.example", False, True)
    assert ascii_host("a b.example") == ("a b.example", False, False)


# --- pages ----------------------------------------------------------------------------------------


async def test_C28_remote_handles_render_as_punycode_with_a_marker_and_no_raw_controls(
    client, fediverse, alice, deps, run_workers, browsers
):
    # A name-less actor whose user name reverses itself posts a link that lies about its target.
    flipper = fediverse.add_actor("flipper", "remote.example", slot=1)
    fediverse.documents[flipper.id] = {**flipper.document(), "preferredUsername": "\u202enimda", "name": ""}
    stored = await resolve_actor(deps, flipper.id)
    await Follow.create(follower=alice, followee=stored, state="accepted", ap_id=f"{ALICE}#f/c28")
    spoof = '<p>log in: <a href="https://evil.example/login">https://paypal.com/login</a></p>'
    create = create_of(fediverse, flipper, to=[PUBLIC], content=spoof)
    assert (await fediverse.post_signed(client, "/inbox", create, as_actor=flipper)).status_code == 202
    await run_workers()
    # A look-alike user name on an internationalised host (the fake serves the punycode URL).
    lookalike = fediverse.add_actor("lookalike", "bücher.example", slot=2)
    document = {**lookalike.document(), "preferredUsername": "p\u0430ypal", "name": "PayPal"}
    fediverse.documents[lookalike.id.replace("bücher", "xn--bcher-kva")] = document

    browser = await browsers("alice")
    home = (await browser.get("/")).text
    assert active_markup(home) == [] and not RAW_CONTROLS.search(home)
    assert "@\ufffdnimda@remote.example" in home  # the override is shown as �, not obeyed
    assert ">\ufffdnimda</" in home  # ... also where the missing display name falls back to it
    assert home.count("⚠ unusual characters") == 1
    assert 'title="Unusual address: invisible or text-direction characters (shown as �)."' in home
    # The link says paypal.com and goes to evil.example: the real server is shown in the link.
    assert "https://paypal.com/login (evil.example)</a>" in home

    card = await browser.get("/search", params={"q": lookalike.id})
    assert card.status_code == 200, card.text
    shown = re.search(r'<p class="acct">(.*?)</p>', card.text, re.S)
    assert shown is not None, card.text
    assert shown.group(1).startswith("@p\u0430ypal@xn--bcher-kva.example <span")  # not bücher
    assert "⚠ unusual characters" in shown.group(1) and "characters other than A–Z" in shown.group(1)

    target = await resolve_actor(deps, flipper.id)
    report = (await browser.get("/report", params={"actor": str(target.id)})).text
    assert not RAW_CONTROLS.search(report) and "⚠ unusual characters" in report


async def test_C28_plain_remote_handles_render_unchanged(
    client, fediverse, alice, deps, run_workers, browsers
):
    bob = fediverse.add_actor("bob", "remote.example")
    stored = await resolve_actor(deps, bob.id)
    await Follow.create(follower=alice, followee=stored, state="accepted", ap_id=f"{ALICE}#f/c28")
    honest = '<p>see <a href="https://paypal.com/help">paypal.com/help</a></p>'
    await fediverse.post_signed(
        client, "/inbox", create_of(fediverse, bob, to=[PUBLIC], content=honest), as_actor=bob
    )
    await run_workers()
    home = (await (await browsers("alice")).get("/")).text
    assert '<span class="acct">@bob@remote.example</span>' in home
    assert "unusual" not in home and "paypal.com/help</a>" in home and "(paypal.com)" not in home
