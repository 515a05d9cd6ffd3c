"""Showing a remote handle `@user@host` so that it cannot impersonate another (security matrix C28).

A remote `preferredUsername` is whatever the other server sends (CVE-2023-36462): Cyrillic `а` in
`pаypal`, a right-to-left override U+202E that shows `@evil` as `@live`, zero-width joiners that
make two different names look the same. Mastodon's usernames are `[A-Za-z0-9_]` with inner `.`/`-`;
Misskey's are ASCII `\\w` with `-`/`.`. So:

* the host is shown in ASCII: internationalised labels as punycode (`xn--…`), exactly as httpx
  encodes them when it connects, so what is shown is the server we talk to (`idn` says so);
* the user name keeps its letters, but control, format (bidi, zero-width) and other invisible
  characters are shown as U+FFFD `�`, never raw, and it is cut at 64 characters;
* a name with anything outside `[A-Za-z0-9_.-]`, an invisible character, more than 64 characters,
  or a host that is not a valid name gets `warnings` (templates show a visible marker).

Stored data is not changed: this is how it is displayed. Pure: no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Final

import httpx

__all__ = ["DisplayHandle", "ascii_host", "display_handle", "display_username"]

MAX_USERNAME_SHOWN: Final = 64
PLAIN_USERNAME: Final = re.compile(r"[A-Za-z0-9_.-]+")
_PLAIN_HOST: Final = re.compile(r"[a-z0-9._-]+")
REPLACEMENT: Final = "\ufffd"
# Never shown raw: white space, and the general categories of controls, format characters (bidi
# overrides and isolates, zero-width joiners, BOM), surrogates, private use, unassigned, separators.
_HIDDEN_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})

UNUSUAL_CHARACTERS: Final = "characters other than A–Z, 0–9, _ . - (look-alike letters?)"
HIDDEN_CHARACTERS: Final = "invisible or text-direction characters (shown as �)"
TOO_LONG: Final = f"longer than {MAX_USERNAME_SHOWN} characters"
BAD_HOST: Final = "the server name is not a valid domain name"


def _hidden(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch) in _HIDDEN_CATEGORIES


def display_username(username: str) -> str:
    """`username` safe to show as text: hidden characters as `�`, at most 64 characters (+ `…`)."""
    shown = "".join(REPLACEMENT if _hidden(ch) else ch for ch in username[: MAX_USERNAME_SHOWN + 1])
    if len(shown) > MAX_USERNAME_SHOWN:
        shown = shown[:MAX_USERNAME_SHOWN] + "…"
    return shown


def _punycode_label(label: str) -> str:
    """A label httpx cannot encode (not valid IDNA), in ASCII anyway: raw punycode, never raw text."""
    if label.isascii():
        return label if label.isprintable() else "".join(ch if ch.isprintable() else "?" for ch in label)
    return "xn--" + label.encode("punycode").decode("ascii")


def ascii_host(host: str) -> tuple[str, bool, bool]:
    """`(ascii, idn, valid)`: `host[:port]` lower-cased with IDN labels as punycode.

    `idn`: the name was (or already is) internationalised. `valid`: it is a name httpx would
    connect to; when not, the result is still ASCII (labels as raw punycode, controls as `?`).
    """
    name, port = host.lower(), ""
    head, sep, tail = name.rpartition(":")
    if sep and tail.isdigit() and len(tail) <= 5 and (not head.startswith("[") or head.endswith("]")):
        name, port = head, sep + tail  # (an IPv6 literal keeps the colons inside its brackets)
    if name.startswith("[") and name.endswith("]") and re.fullmatch(r"\[[0-9a-f:.]+\]", name):
        return name + port, False, True
    if name.isascii():
        labels = name.split(".")
        idn = any(label.startswith("xn--") for label in labels)
        return _punycode_label(name) + port, idn, bool(_PLAIN_HOST.fullmatch(name))
    valid = not any(ch in name for ch in "/?#@\\%:[] ")
    if valid:
        try:
            encoded = httpx.URL(f"https://{name}/").raw_host.decode("ascii")
        except (httpx.InvalidURL, UnicodeError, ValueError):
            valid = False
        else:
            return encoded + port, True, bool(_PLAIN_HOST.fullmatch(encoded))
    return ".".join(_punycode_label(label) for label in name.split(".")) + port, True, False


@dataclass(frozen=True, slots=True)
class DisplayHandle:
    """A handle as shown on pages: `text` is `@user@host`, safe as plain text (module docstring)."""

    username: str
    host: str
    idn: bool
    warnings: tuple[str, ...]

    @property
    def text(self) -> str:
        return f"@{self.username}@{self.host}"

    @property
    def unusual(self) -> bool:
        return bool(self.warnings)


def display_handle(username: str, host: str) -> DisplayHandle:
    """How to show the handle of `username` on `host` (host[:port]), with why it looks unusual."""
    warnings: list[str] = []
    if any(_hidden(ch) for ch in username):
        warnings.append(HIDDEN_CHARACTERS)
    visible = "".join(ch for ch in username if not _hidden(ch))
    if not PLAIN_USERNAME.fullmatch(visible) and (visible or not warnings):
        warnings.append(UNUSUAL_CHARACTERS)
    if len(username) > MAX_USERNAME_SHOWN:
        warnings.append(TOO_LONG)
    shown_host, idn, valid = ascii_host(host)
    if not valid:
        warnings.append(BAD_HOST)
    return DisplayHandle(display_username(username) or REPLACEMENT, shown_host, idn, tuple(warnings))
