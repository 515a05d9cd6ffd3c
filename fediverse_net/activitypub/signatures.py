"""HTTP signatures of server-to-server requests: draft-cavage-12 and RFC 9421, sign and verify.

Pure protocol code (stdlib + cryptography). The web layer turns a request into `RequestParts`
(raw path, lower-case headers, raw body, our public origin); the service layer supplies the async
`key_lookup`. Nothing here does I/O, reads settings or the clock.

Signing (protocol.md §3.1, §3.4): cavage `rsa-sha256` over `(request-target) host date digest
content-type` (POST) / `(request-target) host date` (GET) is the default; RFC 9421 (`sig1`,
`("@method" "@target-uri" "@authority" "content-digest")`, `rsa-v1_5-sha256`) is the fallback.
A request never carries both. `User-Agent`, `Accept` and `Accept-Encoding` are never signed.

Verifying: a `Signature-Input` header selects RFC 9421 (§3.4), otherwise cavage (§3.2). Mastodon's
rules, made stricter where the security matrix (section A) asks:

* cavage must cover `(request-target)` and `host` on every request, not only GETs, and the signed
  Host must be our own host (row 9, CVE-2023-49079); `digest` must be covered on every POST and on
  any request with a body, and is recomputed over the raw body (rows 6-8);
* the time window is §3.2 step 6 exactly (`now - 3900 s <= Date <= now + 3600 s` for a plain
  `Date`). `created`/`expires` signature parameters are only honoured when the matching
  `(created)`/`(expires)` pseudo-header is covered: Mastodon also reads them unsigned, which would
  let anyone stretch the window of a captured request;
* `(request-target)` is tried with the query, then without it (§3.1: Fedify signs without);
* RFC 9421 needs exactly one signature with `keyid` and `created`, covering `@method` and
  `@target-uri` (and `content-digest` on a POST / with a body). `@target-uri` and `@authority`
  are rebuilt from our configured origin, never from the internal request, so a signature for
  another host fails. Component parameters (`;sf`, `;key`, …) are refused;
* on a failed verification the key is looked up again with `refresh=True` exactly once (§3.2 step
  10); rate-limiting that refresh is the lookup's business.

Robustness (row 11): headers over 8 KiB are refused before parsing; parsers are linear regexes;
every failure is a `SignatureError` (401), except a malformed `Content-Digest` (ProtocolError, 400,
as Mastodon). Errors raised by `key_lookup` (KeyFetchError/KeyFetchUnavailable) pass through.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import formatdate
from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from fediverse_net.activitypub.digest import (
    BareItem,
    InnerList,
    Item,
    Token,
    content_digest_header,
    digest_header,
    parse_dictionary,
    serialize_bare_item,
    serialize_inner_list,
    strict_b64decode,
    verify_content_digest,
    verify_digest,
)
from fediverse_net.activitypub.errors import ProtocolError, SignatureError
from fediverse_net.activitypub.keys import MAX_RSA_BITS, MIN_RSA_BITS, SigningKey
from fediverse_net.activitypub.vocab import ACTIVITY_CONTENT_TYPE

Scheme = Literal["draft-cavage", "rfc9421"]

MAX_SIGNATURE_HEADER = 8192
CLOCK_SKEW = 3600  # s, §3.2 step 6
DEFAULT_EXPIRY = 300  # s
MAX_EXPIRY = 43_200  # s
RSA_ALG = "rsa-v1_5-sha256"
ED25519_ALG = "ed25519"

_PKCS1 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()


@dataclass(frozen=True, slots=True)
class RequestParts:
    """What the verifier needs of an incoming request, as received (built by web/requests.py)."""

    method: str  # e.g. "POST"
    target: str  # raw, undecoded path plus "?query", exactly as on the wire
    headers: Mapping[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes
    origin: str  # public origin of OUR server, e.g. "https://events.example"


@dataclass(frozen=True, slots=True)
class PublicKeyInfo:
    """A signer's key as `key_lookup` returns it (§3.6)."""

    key_id: str
    owner: str  # actor id owning the key
    public_key: PublicKeyTypes


KeyLookup = Callable[[str, bool], Awaitable[PublicKeyInfo]]


@dataclass(frozen=True, slots=True)
class VerifiedSignature:
    """Who signed: the caller must still check `owner` against the activity's actor (§3.2 step 11)."""

    key_id: str
    owner: str
    scheme: Scheme


# --- shared helpers --------------------------------------------------------------------------


def _shown(value: str, limit: int = 60) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "…")


def _authority(scheme: str, hostport: str) -> str:
    """Lower-case host[:port] with the scheme's default port dropped."""
    hostport = hostport.strip().lower()
    default = ":443" if scheme == "https" else ":80" if scheme == "http" else None
    if default is not None and hostport.endswith(default):
        hostport = hostport[: -len(default)]
    return hostport


@lru_cache(maxsize=16)
def _split_origin(origin: str) -> tuple[str, str]:
    """(scheme, authority) of our configured public origin."""
    scheme, sep, rest = origin.strip().rstrip("/").partition("://")
    if not sep or not rest or "/" in rest:
        raise ValueError(f"origin must look like https://host[:port], got {origin!r}")
    scheme = scheme.lower()
    return scheme, _authority(scheme, rest)


def _epoch(now: datetime) -> float:
    return (now if now.tzinfo is not None else now.replace(tzinfo=UTC)).timestamp()


def _check_window(created: float, expires: float | None, now: float) -> None:
    """§3.2 step 6, exact Mastodon values (also used for RFC 9421 `created`/`expires`)."""
    if expires is None:
        expires = created + DEFAULT_EXPIRY
    expires = min(expires, created + MAX_EXPIRY)
    if created > now + CLOCK_SKEW or now > expires + CLOCK_SKEW:
        raise SignatureError("Signed request date outside acceptable time window")


_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {m: i for i, m in enumerate(_MONTH_NAMES, 1)}
_MON = "(" + "|".join(_MONTH_NAMES) + ")"
_WEEKDAY = "(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_HMS = r"([0-9]{2}):([0-9]{2}):([0-9]{2})"
_IMF_DATE = re.compile(rf"{_WEEKDAY}, ([0-9]{{2}}) {_MON} ([0-9]{{4}}) {_HMS} GMT")
_RFC850_DATE = re.compile(
    rf"(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day, ([0-9]{{2}})-{_MON}-([0-9]{{2}}) {_HMS} GMT"
)
_ASCTIME_DATE = re.compile(rf"{_WEEKDAY} {_MON} ([ 0-9][0-9]) {_HMS} ([0-9]{{4}})")


def parse_http_date(value: str) -> float:
    """HTTP-date (RFC 9110 §5.6.7: IMF-fixdate, or the obsolete RFC 850/asctime forms) → epoch."""
    value = value.strip()
    try:
        if m := _IMF_DATE.fullmatch(value):
            day, mon, year, hh, mm, ss = m.groups()
        elif m := _RFC850_DATE.fullmatch(value):
            day, mon, yy, hh, mm, ss = m.groups()
            year = str(2000 + int(yy))
        elif m := _ASCTIME_DATE.fullmatch(value):
            mon, day, hh, mm, ss, year = m.groups()
        else:
            raise ValueError(value)
        when = datetime(int(year), _MONTHS[mon], int(day), int(hh), int(mm), int(ss), tzinfo=UTC)
    except ValueError:
        raise SignatureError("Invalid Date header") from None
    return when.timestamp()


def _clean(name: str, value: str | None) -> str:
    if value is None:
        raise SignatureError(f"Signed header {_shown(name)} is missing")
    if "\n" in value or "\r" in value:
        raise SignatureError(f"Header {_shown(name)} contains a line break")
    return value.strip(" \t")


def _decode_signature(value: str) -> bytes:
    try:
        return strict_b64decode(value)
    except ValueError:
        raise SignatureError("Signature is not valid base64") from None


def _signature_problem(
    key: PublicKeyTypes, signature: bytes, candidates: Sequence[bytes], rsa_ok: bool, ed25519_ok: bool
) -> str | None:
    """None when `signature` verifies over one of `candidates` with `key`, else the reason."""
    if isinstance(key, rsa.RSAPublicKey):
        if not MIN_RSA_BITS <= key.key_size <= MAX_RSA_BITS:
            return f"RSA key of {key.key_size} bits refused"
        if not rsa_ok:
            return "Key type does not match the signature algorithm"
        for data in candidates:
            try:
                key.verify(signature, data, _PKCS1, _SHA256)
            except (InvalidSignature, ValueError, TypeError):
                continue
            return None
    elif isinstance(key, ed25519.Ed25519PublicKey):
        if not ed25519_ok:
            return "Key type does not match the signature algorithm"
        for data in candidates:
            try:
                key.verify(signature, data)
            except (InvalidSignature, ValueError, TypeError):
                continue
            return None
    else:
        return "Unsupported key type"
    return "Verification of the signature failed"


async def _verify_with_refresh(
    key_lookup: KeyLookup,
    key_id: str,
    signature: bytes,
    candidates: Sequence[bytes],
    *,
    rsa_ok: bool,
    ed25519_ok: bool,
) -> PublicKeyInfo:
    """§3.2 step 10: verify with the cached key, else refresh it once and verify again."""
    info = await key_lookup(key_id, False)
    if _signature_problem(info.public_key, signature, candidates, rsa_ok, ed25519_ok) is None:
        return info
    info = await key_lookup(key_id, True)
    reason = _signature_problem(info.public_key, signature, candidates, rsa_ok, ed25519_ok)
    if reason is None:
        return info
    raise SignatureError(reason)


async def verify_request(parts: RequestParts, *, key_lookup: KeyLookup, now: datetime) -> VerifiedSignature:
    """Verify the HTTP signature of an incoming request (§3.2 / §3.4); SignatureError if invalid."""
    if "signature-input" in parts.headers:
        return await _verify_rfc9421(parts, key_lookup, _epoch(now))
    header = parts.headers.get("signature")
    if header is None:
        raise SignatureError("Request not signed")
    return await _verify_cavage(parts, header, key_lookup, _epoch(now))


# --- draft-cavage-12 -------------------------------------------------------------------------

# Possessive quantifiers (Python 3.11+): no backtracking at all, so garbage costs one linear scan.
_TCHAR = r"[0-9A-Za-z!#$%&'*+.^_`|~-]++"
_CAVAGE_PARAM = re.compile(
    rf'[ \t]*+({_TCHAR})[ \t]*+=[ \t]*+(?:"([^"\\]*+(?:\\.[^"\\]*+)*+)"|({_TCHAR}))[ \t]*+(?:(,)|\Z)',
    re.DOTALL,
)
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
_CREATED = re.compile(r"[0-9]{1,15}")
_EXPIRES = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,9})?")


def parse_cavage_signature(value: str) -> dict[str, str]:
    """Parse a cavage `Signature` header into its parameters (Mastodon's grammar, §3.2 step 1)."""
    if len(value) > MAX_SIGNATURE_HEADER:
        raise SignatureError("Signature header too long")
    s = value.strip(" \t")
    if s.startswith("Signature "):  # old node-http-signature
        s = s[len("Signature ") :]
    params: dict[str, str] = {}
    pos, end = 0, len(s)
    while True:
        m = _CAVAGE_PARAM.match(s, pos)
        if m is None:
            raise SignatureError("Malformed Signature header")
        name, quoted, token, comma = m.groups()
        if name in params:
            raise SignatureError(f"Duplicate parameter {_shown(name)} in Signature header")
        if quoted is None:
            params[name] = token
        else:
            params[name] = _QUOTED_PAIR.sub(r"\1", quoted) if "\\" in quoted else quoted
        pos = m.end()
        if comma is None:
            return params
        if pos >= end:
            raise SignatureError("Malformed Signature header: trailing comma")


def cavage_signing_string(
    method: str,
    target: str,
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    *,
    created: str | None = None,
    expires: str | None = None,
) -> str:
    """The draft-cavage signing string (§3.1): one `name: value` line per signed name, `\\n`-joined."""
    lines = []
    for name in signed_headers:
        if name == "(request-target)":
            lines.append(f"(request-target): {method.lower()} {target}")
        elif name == "(created)":
            if created is None:
                raise SignatureError("(created) is signed but the created parameter is missing")
            lines.append(f"(created): {created}")
        elif name == "(expires)":
            if expires is None:
                raise SignatureError("(expires) is signed but the expires parameter is missing")
            lines.append(f"(expires): {expires}")
        else:
            lines.append(f"{name}: {_clean(name, headers.get(name))}")
    return "\n".join(lines)


def _cavage_pseudo_param(params: Mapping[str, str], name: str, pattern: re.Pattern[str]) -> str:
    value = params.get(name)
    if value is None or not pattern.fullmatch(value):
        raise SignatureError(f"({name}) is signed but the {name} parameter is missing or invalid")
    return value


async def _verify_cavage(
    parts: RequestParts, header: str, key_lookup: KeyLookup, now: float
) -> VerifiedSignature:
    params = parse_cavage_signature(header)
    key_id, signature = params.get("keyId"), params.get("signature")
    if not key_id:
        raise SignatureError("Signature header has no keyId")
    if not signature:
        raise SignatureError("Signature header has no signature")
    algorithm = params.get("algorithm", "hs2019")  # case-sensitive, as Mastodon
    if algorithm not in ("rsa-sha256", "hs2019"):
        raise SignatureError(f"Unsupported signature algorithm {_shown(algorithm)}")
    signed = params.get("headers", "(created)" if algorithm == "hs2019" else "date").lower().split()
    covered = frozenset(signed)
    if len(covered) != len(signed):
        raise SignatureError("Signature headers list has duplicates")
    # Strength (§3.2 step 5, tightened per security matrix rows 6 and 9).
    if "date" not in covered and "(created)" not in covered:
        raise SignatureError("The Date header or (created) pseudo-header must be signed")
    if "(request-target)" not in covered:
        raise SignatureError("The (request-target) pseudo-header must be signed")
    if "host" not in covered:
        raise SignatureError("The Host header must be signed")
    if (parts.method.upper() == "POST" or parts.body) and "digest" not in covered:
        raise SignatureError("The Digest header must be signed when the request has a body")
    created = expires = None
    if ("(created)" in covered or "(expires)" in covered) and algorithm != "hs2019":
        raise SignatureError("(created) and (expires) are only allowed with hs2019")
    if "(created)" in covered:
        created = _cavage_pseudo_param(params, "created", _CREATED)
    if "(expires)" in covered:
        expires = _cavage_pseudo_param(params, "expires", _EXPIRES)
    scheme, authority = _split_origin(parts.origin)
    if _authority(scheme, _clean("host", parts.headers.get("host"))) != authority:
        raise SignatureError("Signed Host header does not match this server")
    if created is not None:
        created_at = float(created)
    else:
        created_at = parse_http_date(_clean("date", parts.headers.get("date")))
    _check_window(created_at, float(expires) if expires is not None else None, now)
    if "digest" in covered:
        verify_digest(parts.headers.get("digest"), parts.body)

    targets = [parts.target]
    if "?" in parts.target and "(request-target)" in covered:
        targets.append(parts.target.partition("?")[0])
    candidates = [
        cavage_signing_string(
            parts.method, t, parts.headers, signed, created=created, expires=expires
        ).encode()
        for t in targets
    ]
    raw_signature = _decode_signature(signature)
    info = await _verify_with_refresh(
        key_lookup, key_id, raw_signature, candidates, rsa_ok=True, ed25519_ok=algorithm == "hs2019"
    )
    return VerifiedSignature(key_id=key_id, owner=info.owner, scheme="draft-cavage")


# --- RFC 9421 --------------------------------------------------------------------------------

_FIELD_NAME = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+")


def _component_value(name: str, method: str, target_uri: str, headers: Mapping[str, str]) -> str:
    if not name.startswith("@"):
        if not _FIELD_NAME.fullmatch(name):
            raise SignatureError(f"Invalid component identifier {_shown(name)}")
        return _clean(name, headers.get(name))
    scheme, _, rest = target_uri.partition("://")
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority, request_target = rest[:cut], rest[cut:]
    if not request_target.startswith("/"):
        request_target = "/" + request_target
    path, _, query = request_target.partition("?")
    match name:
        case "@method":
            return method.upper()
        case "@target-uri":
            return target_uri
        case "@authority":
            return _authority(scheme.lower(), authority)
        case "@scheme":
            return scheme.lower()
        case "@request-target":
            return request_target
        case "@path":
            return path
        case "@query":
            return "?" + query
    raise SignatureError(f"Unsupported component {_shown(name)}")


def rfc9421_signature_base(
    *,
    method: str,
    target_uri: str,
    headers: Mapping[str, str],
    components: Sequence[str],
    params: Mapping[str, BareItem],
) -> str:
    """The RFC 9421 §2.5 signature base: covered components, then `"@signature-params"`."""
    lines = [f'"{c}": {_component_value(c, method, target_uri, headers)}' for c in components]
    try:
        lines.append(f'"@signature-params": {serialize_inner_list(components, params)}')
    except ValueError:
        raise SignatureError("Signature parameters cannot be serialised") from None
    return "\n".join(lines)


def _parse_rfc9421(parts: RequestParts) -> tuple[InnerList, bytes]:
    sig_input = parts.headers.get("signature-input", "")
    sig_header = parts.headers.get("signature")
    if sig_header is None:
        raise SignatureError("Signature-Input without a Signature header")
    if len(sig_input) > MAX_SIGNATURE_HEADER or len(sig_header) > MAX_SIGNATURE_HEADER:
        raise SignatureError("Signature header too long")
    try:
        inputs, signatures = parse_dictionary(sig_input), parse_dictionary(sig_header)
    except ProtocolError as exc:
        raise SignatureError(f"Malformed RFC 9421 signature header: {exc}") from None
    if len(inputs) != 1 or len(signatures) != 1:
        raise SignatureError("Exactly one RFC 9421 signature is supported")
    ((label, member),) = inputs.items()
    value = signatures.get(label)
    if not isinstance(member, InnerList):
        raise SignatureError("Signature-Input member is not an inner list")
    if not isinstance(value, Item) or not isinstance(value.value, bytes):
        raise SignatureError("Signature value missing or not a byte sequence for the signature label")
    return member, value.value


def _typed_param(params: Mapping[str, BareItem], name: str, *, required: bool) -> BareItem | None:
    value = params.get(name)
    if value is None and required:
        raise SignatureError(f"Signature-Input has no {name} parameter")
    return value


def _int_param(params: Mapping[str, BareItem], name: str, *, required: bool) -> int | None:
    value = _typed_param(params, name, required=required)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise SignatureError(f"Signature-Input parameter {name} is not an integer")


def _str_param(params: Mapping[str, BareItem], name: str, *, required: bool) -> str | None:
    value = _typed_param(params, name, required=required)
    if value is None or (isinstance(value, str) and not isinstance(value, Token)):
        return value
    raise SignatureError(f"Signature-Input parameter {name} is not a string")


async def _verify_rfc9421(parts: RequestParts, key_lookup: KeyLookup, now: float) -> VerifiedSignature:
    member, raw_signature = _parse_rfc9421(parts)
    components: list[str] = []
    for item in member.items:
        if not isinstance(item.value, str) or isinstance(item.value, Token) or item.params:
            raise SignatureError("Unsupported component identifier in Signature-Input")
        components.append(item.value)
    if len(set(components)) != len(components):
        raise SignatureError("Signature-Input repeats a component")
    params = member.params
    key_id = _str_param(params, "keyid", required=True)
    created = _int_param(params, "created", required=True)
    expires = _int_param(params, "expires", required=False)
    alg = _str_param(params, "alg", required=False)
    if not key_id or created is None:  # (created is None cannot happen: it is required)
        raise SignatureError("Signature-Input has an empty keyid")
    if alg is not None and alg not in (RSA_ALG, ED25519_ALG):
        raise SignatureError(f"Unsupported signature algorithm {_shown(alg)}")
    if "@method" not in components or "@target-uri" not in components:
        raise SignatureError("RFC 9421 signatures must cover @method and @target-uri")
    if (parts.method.upper() == "POST" or parts.body) and "content-digest" not in components:
        raise SignatureError("RFC 9421 signatures must cover content-digest when the request has a body")
    _check_window(created, expires, now)
    if "content-digest" in components:
        verify_content_digest(parts.headers.get("content-digest"), parts.body)
    if not parts.target.startswith("/"):
        raise SignatureError("Unsupported request target form")
    scheme, authority = _split_origin(parts.origin)
    base = rfc9421_signature_base(
        method=parts.method,
        target_uri=f"{scheme}://{authority}{parts.target}",
        headers=parts.headers,
        components=components,
        params=params,
    ).encode()
    info = await _verify_with_refresh(
        key_lookup, key_id, raw_signature, (base,), rsa_ok=alg != ED25519_ALG, ed25519_ok=alg != RSA_ALG
    )
    return VerifiedSignature(key_id=key_id, owner=info.owner, scheme="rfc9421")


# --- signing ---------------------------------------------------------------------------------

_UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
# WHATWG percent-encode sets (what httpx applies): printable ASCII minus these.
_QUERY_UNSAFE = ' "#<>'
_PATH_UNSAFE = _QUERY_UNSAFE + "?`{}"
_PATH_SAFE = frozenset(chr(i) for i in range(0x21, 0x7F)) - frozenset(_PATH_UNSAFE)
_QUERY_SAFE = frozenset(chr(i) for i in range(0x21, 0x7F)) - frozenset(_QUERY_UNSAFE)
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_RESERVED_HEADERS = frozenset({"host", "date", "digest", "content-digest", "signature", "signature-input"})
_SIGNED_EXTRAS = ("content-type", "collection-synchronization")


def _wire_quote(text: str, safe: frozenset[str]) -> str:
    if all(c in safe for c in text):
        return text
    return "".join(c if c in safe else "".join(f"%{b:02X}" for b in c.encode()) for c in text)


def _wire_host(host: str) -> str:
    host = host.lower()
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValueError(f"invalid international host name {host!r}") from exc


def _split_url(url: str) -> tuple[str, str, str]:
    """(scheme, authority as sent in Host, request target as sent on the wire) of an URL."""
    if _CONTROL_CHARS.search(url):
        raise ValueError(f"control character in URL {url!r}")
    parsed = urlsplit(url)
    scheme = parsed.scheme.lower()
    if scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"cannot sign a request to {url!r}")
    host = _wire_host(parsed.hostname)
    if ":" in host:
        host = f"[{host}]"
    port = parsed.port  # ValueError when invalid
    authority = host if port is None else _authority(scheme, f"{host}:{port}")
    target = _wire_quote(parsed.path or "/", _PATH_SAFE)
    if parsed.query or url.partition("#")[0].endswith("?"):
        target += "?" + _wire_quote(parsed.query, _QUERY_SAFE)
    return scheme, authority, target


def _quote_cavage(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def sign_request(
    method: str,
    url: str,
    body: bytes | None,
    *,
    key: SigningKey,
    scheme: Scheme = "draft-cavage",
    now: datetime | None = None,
    extra_headers: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The headers to add to an outgoing request so that it carries one signature (§3.1 / §3.4).

    A POST always gets a digest (of `b""` when `body` is None). `extra_headers` are returned too;
    `Content-Type` from them replaces our default and, like `Collection-Synchronization`, is signed.
    """
    method = method.upper()
    url_scheme, authority, target = _split_url(url)
    timestamp = int(_epoch(now or datetime.now(UTC)))
    extra = dict(extra_headers or {})
    lowered = {k.lower(): v for k, v in extra.items()}
    if clash := _RESERVED_HEADERS.intersection(lowered):
        raise ValueError(f"extra_headers must not set {sorted(clash)}")
    has_body = body is not None or method == "POST"
    payload = body or b""
    out = {"Host": authority, "Date": formatdate(timestamp, usegmt=True)}
    if has_body and "content-type" not in lowered:
        out["Content-Type"] = lowered["content-type"] = ACTIVITY_CONTENT_TYPE
    out.update(extra)
    lowered.update(host=authority, date=out["Date"])
    if scheme == "draft-cavage":
        signed = ["(request-target)", "host", "date"]
        if has_body:
            out["Digest"] = lowered["digest"] = digest_header(payload)
            signed.append("digest")
        signed += [name for name in _SIGNED_EXTRAS if name in lowered]
        text = cavage_signing_string(method, target, lowered, signed)
        sig = base64.b64encode(key.private_key.sign(text.encode(), _PKCS1, _SHA256)).decode()
        out["Signature"] = (
            f'keyId="{_quote_cavage(key.key_id)}",algorithm="rsa-sha256",'
            f'headers="{" ".join(signed)}",signature="{sig}"'
        )
    elif scheme == "rfc9421":
        if not key.key_id.isascii() or not key.key_id.isprintable():
            raise ValueError("RFC 9421 keyid must be printable ASCII")
        components = ["@method", "@target-uri", "@authority"]
        if has_body:
            out["Content-Digest"] = lowered["content-digest"] = content_digest_header(payload)
            components.append("content-digest")
        components += [name for name in _SIGNED_EXTRAS[1:] if name in lowered]
        params: dict[str, BareItem] = {"created": timestamp, "keyid": key.key_id, "alg": RSA_ALG}
        base = rfc9421_signature_base(
            method=method,
            target_uri=f"{url_scheme}://{authority}{target}",
            headers=lowered,
            components=components,
            params=params,
        )
        sig_bytes = key.private_key.sign(base.encode(), _PKCS1, _SHA256)
        out["Signature-Input"] = "sig1=" + serialize_inner_list(components, params)
        out["Signature"] = "sig1=" + serialize_bare_item(sig_bytes)
    else:
        raise ValueError(f"unknown signature scheme {scheme!r}")
    return out
