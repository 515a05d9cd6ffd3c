"""Digest / Content-Digest headers and the RFC 8941 structured-field parser (protocol.md §3.1-§3.4)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
    verify_content_digest,
    verify_digest,
)
from fediverse_net.activitypub.errors import ProtocolError, SignatureError

# The body whose digest protocol.md §3.1/§3.4 show (the RFC 9530 example body).
BODY = b'{"hello": "world"}'
B64 = "X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE="


def test_digest_header_matches_protocol_example() -> None:
    assert digest_header(BODY) == f"SHA-256={B64}"


def test_content_digest_header_matches_protocol_example() -> None:
    assert content_digest_header(BODY) == f"sha-256=:{B64}:"


def test_empty_body_digest() -> None:
    expected = base64.b64encode(hashlib.sha256(b"").digest()).decode()
    assert digest_header(b"") == f"SHA-256={expected}"


# --- Digest -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        f"SHA-256={B64}",
        f"sha-256={B64}",
        f"Sha-256={B64}",
        f"SHA-512=AAAA, SHA-256={B64}",
        f"SHA-256={B64},MD5=AAAA",
        f"  SHA-256={B64}  ",
    ],
)
def test_verify_digest_accepts(header: str) -> None:
    verify_digest(header, BODY)


def test_verify_digest_mismatch_names_computed_value() -> None:
    with pytest.raises(SignatureError, match=f"Invalid Digest value. Computed SHA-256 digest: {B64}"):
        verify_digest(digest_header(b"tampered"), BODY)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing"),
        ("", "missing"),
        (
            "SHA-512=" + base64.b64encode(hashlib.sha512(BODY).digest()).decode(),
            "Offered algorithms: sha-512",
        ),
        ("SHA-256=not base64!", "not valid base64"),
        ("SHA-256=" + B64[:-1], "not valid base64"),  # padding missing
        ("SHA-256=" + B64.replace("=", "M"), "33 bytes"),  # valid base64, wrong length
        ("SHA-256=" + base64.b64encode(hashlib.sha256(BODY).digest()[:31]).decode(), "31 bytes"),
        ("SHA-256", "Malformed"),
        ("=abc", "Malformed"),
        (f"SHA-256={B64}, SHA-256={B64}", "more than one"),
        ("SHA-256=" + "A" * 9000, "too long"),
        ("x=1," * 20 + f"SHA-256={B64}", "too many entries"),
    ],
)
def test_verify_digest_rejects_with_reason(header: str | None, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        verify_digest(header, BODY)


def test_verify_digest_rejects_non_canonical_base64() -> None:
    # Same 32 bytes, but the last character carries non-zero padding bits.
    raw = hashlib.sha256(BODY).digest()
    canonical = base64.b64encode(raw).decode()
    tweaked = canonical[:-2] + chr(ord(canonical[-2]) + 1) + "="
    assert base64.b64decode(tweaked)[:31] == raw[:31]
    with pytest.raises(SignatureError):
        verify_digest(f"SHA-256={tweaked}", BODY)


def test_verify_digest_rejects_urlsafe_alphabet() -> None:
    urlsafe = base64.urlsafe_b64encode(hashlib.sha256(b"x" * 37).digest()).decode()
    assert "-" in urlsafe or "_" in urlsafe
    with pytest.raises(SignatureError, match="base64"):
        verify_digest(f"SHA-256={urlsafe}", b"x" * 37)


@given(st.text(max_size=300))
def test_verify_digest_random_input_only_raises_signature_error(header: str) -> None:
    with contextlib.suppress(SignatureError):
        verify_digest(header, BODY)


# --- Content-Digest ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        f"sha-256=:{B64}:",
        f"sha-512=:{base64.b64encode(hashlib.sha512(BODY).digest()).decode()}:, sha-256=:{B64}:",
        f"sha-256=:{B64}:;note=1",
        f"  sha-256=:{B64}:  ",
    ],
)
def test_verify_content_digest_accepts(header: str) -> None:
    verify_content_digest(header, BODY)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing"),
        ("", "Only SHA-256"),
        ("sha-512=:" + base64.b64encode(hashlib.sha512(BODY).digest()).decode() + ":", "sha-512"),
        (content_digest_header(b"other"), "Computed SHA-256 digest"),
        ("sha-256=:" + base64.b64encode(b"x" * 31).decode() + ":", "not a SHA-256 digest"),
    ],
)
def test_verify_content_digest_signature_errors(header: str | None, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        verify_content_digest(header, BODY)


@pytest.mark.parametrize(
    "header",
    [
        f"sha-256={B64}",  # not a byte sequence: a token that does not even parse ("=" chars)
        f"SHA-256=:{B64}:",  # keys are lower-case
        f"sha-256=:{B64}",  # unterminated
        f"sha-256=:{B64}:,",  # trailing comma
        f"sha-256=:{B64}: sha-512=:AA==:",  # missing comma
        "sha-256=:%%%%:",
        f"sha-256=:{B64[:-1]}:",  # bad padding
        'sha-256="abc"',  # a string, not bytes
        "sha-256=abc",  # a token, not bytes
        f"sha-256=:{B64}:, sha-256=:{B64}:",  # duplicate key
        "sha-256=:" + "A" * 9000 + ":",  # too long
        "sha-256=(:" + B64 + ":)",  # inner list
    ],
)
def test_verify_content_digest_malformed_is_protocol_error(header: str) -> None:
    with pytest.raises(ProtocolError):
        verify_content_digest(header, BODY)


@given(st.text(max_size=300))
def test_verify_content_digest_random_input_only_raises_federation_errors(header: str) -> None:
    with contextlib.suppress(SignatureError, ProtocolError):
        verify_content_digest(header, BODY)


# --- RFC 8941 dictionaries --------------------------------------------------------------------


def test_parse_dictionary_signature_input_shape() -> None:
    parsed = parse_dictionary(
        'sig1=("@method" "@target-uri" "content-digest");created=1788256800;keyid="https://m.example/u#k"'
    )
    member = parsed["sig1"]
    assert isinstance(member, InnerList)
    assert [i.value for i in member.items] == ["@method", "@target-uri", "content-digest"]
    assert member.params == {"created": 1788256800, "keyid": "https://m.example/u#k"}


def test_parse_dictionary_bare_item_types() -> None:
    parsed = parse_dictionary('a=1, b=-2.5, c="x\\"y\\\\", d=tok/en:1, e=:AQID:, f=?0, g, h=?1;p;q=*z')
    values = {k: v.value for k, v in parsed.items() if isinstance(v, Item)}
    assert values == {
        "a": 1,
        "b": Decimal("-2.5"),
        "c": 'x"y\\',
        "d": "tok/en:1",
        "e": b"\x01\x02\x03",
        "f": False,
        "g": True,
        "h": True,
    }
    assert isinstance(values["d"], Token)
    h = parsed["h"]
    assert isinstance(h, Item) and h.params == {"p": True, "q": Token("*z")}


def test_parse_dictionary_empty_and_inner_list_spacing() -> None:
    assert parse_dictionary("") == {}
    member = parse_dictionary("a=(  1   2 );x")["a"]
    assert isinstance(member, InnerList)
    assert [i.value for i in member.items] == [1, 2] and member.params == {"x": True}


@pytest.mark.parametrize(
    "text",
    [
        "a=1,",
        "a=1 b=2",
        "A=1",
        "a=1, a=2",
        "a=1;p;p",
        'a="unterminated',
        'a="bad \\n escape"',
        "a=1234567890123456",
        "a=1.2345",
        "a=(1 2",
        "a=(1,2)",
        "a=?2",
        "a=-",
        "a=ü",
        "a=@123",
        ", ".join(f"k{i}=1" for i in range(65)),
        "a=(" + " ".join(["1"] * 65) + ")",
        "a" + "".join(f";p{i}" for i in range(65)),
        'a=%"display"',
    ],
)
def test_parse_dictionary_rejects_malformed(text: str) -> None:
    with pytest.raises(ProtocolError):
        parse_dictionary(text)


def test_serialize_inner_list_matches_rfc9421_params_line() -> None:
    text = serialize_inner_list(
        ["@method", "@target-uri", "content-digest"],
        {"created": 1788256800, "keyid": "https://mastodon.example/users/bob#main-key"},
    )
    assert text == (
        '("@method" "@target-uri" "content-digest");created=1788256800;'
        'keyid="https://mastodon.example/users/bob#main-key"'
    )


def test_serialize_bare_items() -> None:
    assert serialize_bare_item(True) == "?1"
    assert serialize_bare_item(False) == "?0"
    assert serialize_bare_item(Decimal("1.50")) == "1.5"
    assert serialize_bare_item(Decimal("2")) == "2.0"
    assert serialize_bare_item(b"\x00") == ":AA==:"
    assert serialize_bare_item(Token("a/b")) == "a/b"
    assert serialize_bare_item('q"\\') == '"q\\"\\\\"'
    with pytest.raises(ValueError):
        serialize_bare_item("ü")


@given(st.text(max_size=200))
def test_parse_dictionary_random_text_only_raises_protocol_error(text: str) -> None:
    with contextlib.suppress(ProtocolError):
        parse_dictionary(text)


_sf_strings = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)
_sf_keys = st.from_regex(r"[a-z*][a-z0-9_\-.*]{0,6}", fullmatch=True)
_sf_items = st.one_of(
    st.integers(min_value=-(10**15) + 1, max_value=10**15 - 1),
    _sf_strings,
    st.binary(max_size=20),
    st.booleans(),
)


@given(
    st.lists(_sf_items, max_size=5),
    st.dictionaries(_sf_keys, _sf_items, max_size=4),
)
def test_inner_list_serialise_parse_round_trip(items: list[BareItem], params: dict[str, BareItem]) -> None:
    text = "sig=" + serialize_inner_list(items, params)
    member = parse_dictionary(text)["sig"]
    assert isinstance(member, InnerList)
    assert [i.value for i in member.items] == items
    assert member.params == params
