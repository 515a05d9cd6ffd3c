"""Body digests (`Digest`, `Content-Digest`) and the RFC 8941 structured fields they use.

* `Digest: SHA-256=<base64>` (RFC 3230) is what draft-cavage signatures cover (protocol.md §3.1,
  §3.2 step 7). Mastodon compares the algorithm name case-insensitively and accepts a comma list;
  so do we. We are stricter in three places: the value must be canonical standard base64 of exactly
  32 bytes, two `sha-256` entries are refused (they would let two parsers disagree), and the header
  is capped in length. Errors name the computed value, as Mastodon's do (security matrix A7/A8).
* `Content-Digest: sha-256=:<base64>:` (RFC 9530) is what RFC 9421 signatures cover (§3.4). It is a
  structured-field dictionary: a header that does not parse is a ProtocolError (Mastodon answers
  400, §3.2 table); a parsed header without a usable `sha-256` member, or with a wrong digest, is a
  SignatureError (401).

The structured-field parser below (RFC 8941 §4.2, without the RFC 9651 Date/Display String types)
is shared with `signatures.py` for `Signature-Input` and `Signature`. It is regex-driven and linear
in the input, and it refuses duplicate dictionary keys and duplicate parameters (RFC 8941 would let
the last one win; for signature metadata an ambiguous header is safer refused). Bare items map to
Python as: Integer → int, Decimal → Decimal, String → str, Token → `Token` (a str subclass),
Byte Sequence → bytes, Boolean → bool.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from fediverse_net.activitypub.errors import ProtocolError, SignatureError

MAX_DIGEST_HEADER = 8192
MAX_DIGEST_ENTRIES = 16
# RFC 8941 asks parsers to support 1024 members/items and 256 parameters; no signature or digest
# header needs more than a handful, and capping keeps the cost of garbage input small.
MAX_SF_MEMBERS = 64
_SHA256_LEN = 32


class Token(str):
    """An RFC 8941 Token (as opposed to a String)."""

    __slots__ = ()


BareItem = int | Decimal | str | bytes | bool


@dataclass(frozen=True, slots=True)
class Item:
    value: BareItem
    params: dict[str, BareItem]


@dataclass(frozen=True, slots=True)
class InnerList:
    items: tuple[Item, ...]
    params: dict[str, BareItem]


Member = Item | InnerList


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _shown(value: str, limit: int = 100) -> str:
    """A bounded echo of untrusted input for error messages."""
    return value if len(value) <= limit else value[:limit] + "…"


def strict_b64decode(value: str) -> bytes:
    """Standard base64 with padding, canonical form only; ValueError otherwise."""
    raw = binascii.a2b_base64(value, strict_mode=True)  # ValueError (binascii.Error) on junk
    if binascii.b2a_base64(raw, newline=False) != value.encode("ascii"):
        raise ValueError("non-canonical base64")
    return raw


# --- Digest (RFC 3230) -----------------------------------------------------------------------


def digest_header(body: bytes) -> str:
    """`Digest` header value for `body`: `SHA-256=<base64(sha256(body))>` (§3.1)."""
    return "SHA-256=" + _b64(hashlib.sha256(body).digest())


def verify_digest(header_value: str | None, body: bytes) -> None:
    """Check a `Digest` header against the raw body; SignatureError with the reason otherwise."""
    if header_value is None or not header_value.strip():
        raise SignatureError("Digest header missing")
    if len(header_value) > MAX_DIGEST_HEADER:
        raise SignatureError("Digest header too long")
    given: str | None = None
    offered: list[str] = []
    entries = header_value.split(",", MAX_DIGEST_ENTRIES)
    if len(entries) > MAX_DIGEST_ENTRIES:
        raise SignatureError("Digest header has too many entries")
    for entry in entries:
        name, sep, value = entry.strip(" \t").partition("=")
        if not sep or not name:
            raise SignatureError(f"Malformed Digest header: {_shown(header_value)!r}")
        name = name.lower()
        offered.append(name)
        if name == "sha-256":
            if given is not None:
                raise SignatureError("Digest header has more than one SHA-256 value")
            given = value
    if given is None:
        raise SignatureError(
            "Only SHA-256 is supported in the Digest header. "
            f"Offered algorithms: {_shown(', '.join(offered))}"
        )
    try:
        raw = strict_b64decode(given)
    except ValueError:
        raise SignatureError(
            f"Invalid Digest value. The provided value is not valid base64: {_shown(given)!r}"
        ) from None
    computed = hashlib.sha256(body).digest()
    if len(raw) != _SHA256_LEN:
        raise SignatureError(
            f"Invalid Digest value. The provided value is not a SHA-256 digest ({len(raw)} bytes). "
            f"Given: {_shown(given)}"
        )
    if not hmac.compare_digest(raw, computed):
        raise SignatureError(
            f"Invalid Digest value. Computed SHA-256 digest: {_b64(computed)}; given: {given}"
        )


# --- Content-Digest (RFC 9530) ---------------------------------------------------------------


def content_digest_header(body: bytes) -> str:
    """`Content-Digest` header value for `body`: `sha-256=:<base64>:` (§3.4)."""
    return "sha-256=:" + _b64(hashlib.sha256(body).digest()) + ":"


def verify_content_digest(header_value: str | None, body: bytes) -> None:
    """Check a `Content-Digest` header: ProtocolError if malformed, SignatureError if wrong."""
    if header_value is None:
        raise SignatureError("Content-Digest header missing")
    if len(header_value) > MAX_DIGEST_HEADER:
        raise ProtocolError("Content-Digest header too long")
    members = parse_dictionary(header_value)  # ProtocolError when malformed
    member = members.get("sha-256")
    if member is None:
        raise SignatureError(
            "Only SHA-256 is supported in the Content-Digest header. "
            f"Offered algorithms: {_shown(', '.join(members))}"
        )
    if not isinstance(member, Item) or not isinstance(member.value, bytes):
        raise ProtocolError("Content-Digest sha-256 value is not a byte sequence")
    raw = member.value
    computed = hashlib.sha256(body).digest()
    if len(raw) != _SHA256_LEN:
        raise SignatureError(
            f"Invalid Content-Digest value. The provided value is not a SHA-256 digest ({len(raw)} bytes)"
        )
    if not hmac.compare_digest(raw, computed):
        raise SignatureError(
            f"Invalid Content-Digest value. Computed SHA-256 digest: {_b64(computed)}; given: {_b64(raw)}"
        )


# --- RFC 8941 structured fields --------------------------------------------------------------

# Possessive quantifiers: no backtracking, one linear scan per token.
_KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*+")
_TOKEN = re.compile(r"[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*+")
_NUMBER = re.compile(r"-?([0-9]++)(?:\.([0-9]++))?")
_STRING = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]++|\\["\\])*+)"')
_BYTES = re.compile(r":([A-Za-z0-9+/=]*+):")
_OWS = re.compile(r"[ \t]*+")
_SP = re.compile(r" *+")
_UNESCAPE = re.compile(r"\\([\"\\])")


def _fail(what: str) -> ProtocolError:
    return ProtocolError(f"malformed structured field: {what}")


class _Parser:
    __slots__ = ("pos", "s")

    def __init__(self, s: str) -> None:
        self.s = s
        self.pos = 0

    def peek(self) -> str:
        return self.s[self.pos] if self.pos < len(self.s) else ""

    def skip(self, pattern: re.Pattern[str]) -> None:
        m = pattern.match(self.s, self.pos)
        if m is not None:
            self.pos = m.end()

    def key(self) -> str:
        m = _KEY.match(self.s, self.pos)
        if m is None:
            raise _fail("expected a key")
        self.pos = m.end()
        return m.group()

    def bare_item(self) -> BareItem:
        s, pos = self.s, self.pos
        c = self.peek()
        if c == '"':
            m = _STRING.match(s, pos)
            if m is None:
                raise _fail("bad string")
            self.pos = m.end()
            return _UNESCAPE.sub(r"\1", m.group(1))
        if c == ":":
            m = _BYTES.match(s, pos)
            if m is None:
                raise _fail("bad byte sequence")
            try:
                value = strict_b64decode(m.group(1))
            except ValueError:
                raise _fail("bad base64 in byte sequence") from None
            self.pos = m.end()
            return value
        if c == "?":
            flag = s[pos + 1 : pos + 2]
            if flag not in ("0", "1"):
                raise _fail("bad boolean")
            self.pos = pos + 2
            return flag == "1"
        if c == "-" or c.isdigit():
            return self._number()
        m = _TOKEN.match(s, pos)
        if m is None:
            raise _fail("unexpected character")
        self.pos = m.end()
        return Token(m.group())

    def _number(self) -> int | Decimal:
        m = _NUMBER.match(self.s, self.pos)
        if m is None:
            raise _fail("bad number")
        whole, frac = m.group(1), m.group(2)
        if frac is None:
            if len(whole) > 15:
                raise _fail("integer too long")
            self.pos = m.end()
            return int(m.group())
        if len(whole) > 12 or len(frac) > 3:
            raise _fail("decimal too long")
        self.pos = m.end()
        return Decimal(m.group())

    def params(self) -> dict[str, BareItem]:
        out: dict[str, BareItem] = {}
        while self.peek() == ";":
            if len(out) >= MAX_SF_MEMBERS:
                raise _fail("too many parameters")
            self.pos += 1
            self.skip(_SP)
            name = self.key()
            value: BareItem = True
            if self.peek() == "=":
                self.pos += 1
                value = self.bare_item()
            if name in out:
                raise _fail(f"duplicate parameter {name!r}")
            out[name] = value
        return out

    def item_or_inner_list(self) -> Member:
        if self.peek() != "(":
            value = self.bare_item()
            return Item(value, self.params())
        self.pos += 1
        items: list[Item] = []
        while True:
            self.skip(_SP)
            if self.peek() == ")":
                self.pos += 1
                return InnerList(tuple(items), self.params())
            if len(items) >= MAX_SF_MEMBERS:
                raise _fail("too many inner list items")
            value = self.bare_item()
            items.append(Item(value, self.params()))
            if self.peek() not in (" ", ")"):
                raise _fail("bad inner list")


def parse_dictionary(value: str) -> dict[str, Member]:
    """Parse an RFC 8941 Dictionary; ProtocolError on any syntax error or duplicate key."""
    if not value.isascii():
        raise _fail("non-ASCII input")
    p = _Parser(value.strip(" "))
    out: dict[str, Member] = {}
    if not p.s:
        return out
    while True:
        if len(out) >= MAX_SF_MEMBERS:
            raise _fail("too many members")
        name = p.key()
        member: Member
        if p.peek() == "=":
            p.pos += 1
            member = p.item_or_inner_list()
        else:
            member = Item(True, p.params())
        if name in out:
            raise _fail(f"duplicate key {name!r}")
        out[name] = member
        p.skip(_OWS)
        if p.pos >= len(p.s):
            return out
        if p.peek() != ",":
            raise _fail("expected a comma")
        p.pos += 1
        p.skip(_OWS)
        if p.pos >= len(p.s):
            raise _fail("trailing comma")


def serialize_bare_item(value: BareItem) -> str:
    """RFC 8941 §4.1 serialisation of one bare item."""
    if isinstance(value, bool):
        return "?1" if value else "?0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        text = f"{value.quantize(Decimal('0.001')):f}".rstrip("0")
        return text + "0" if text.endswith(".") else text
    if isinstance(value, bytes):
        return ":" + _b64(value) + ":"
    if isinstance(value, Token):
        return str(value)
    if not _STRING_SAFE.fullmatch(value):
        raise ValueError("string not serialisable as an RFC 8941 String")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


_STRING_SAFE = re.compile(r"[\x20-\x7e]*")


def serialize_params(params: Mapping[str, BareItem]) -> str:
    return "".join(f";{k}" if v is True else f";{k}={serialize_bare_item(v)}" for k, v in params.items())


def serialize_inner_list(items: Sequence[BareItem], params: Mapping[str, BareItem]) -> str:
    """`("a" "b");k=v` — parameter-less items, as RFC 9421 `@signature-params` uses them."""
    return "(" + " ".join(serialize_bare_item(i) for i in items) + ")" + serialize_params(params)
