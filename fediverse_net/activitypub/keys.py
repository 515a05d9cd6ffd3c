"""RSA key pairs: generation, PEM (de)serialisation with caches, and the signing key handle."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from fediverse_net.activitypub.errors import SignatureError

RSA_KEY_SIZE = 2048
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192


@dataclass(frozen=True, slots=True)
class SigningKey:
    """The private half an actor signs with, and the `keyId` it publishes."""

    key_id: str
    private_key: rsa.RSAPrivateKey


def generate_rsa_keypair() -> tuple[str, str]:
    """A new RSA-2048 key pair as (private PKCS#8 PEM, public SPKI PEM), as Mastodon generates."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_SIZE)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


@lru_cache(maxsize=4096)
def load_private_key(pem: str) -> rsa.RSAPrivateKey:
    """Parse a private PEM once; parsed keys are cached (parsing costs more than signing)."""
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("only RSA private keys are supported")
    return key


@lru_cache(maxsize=16384)
def load_public_key(pem: str) -> PublicKeyTypes:
    """Parse a public PEM (SPKI, or PKCS#1 as some old servers publish), cached by PEM text.

    Raises SignatureError for unparseable keys and RSA keys outside 2048–8192 bits.
    """
    data = pem.strip().encode()
    try:
        # cryptography reads both "PUBLIC KEY" (SPKI) and "RSA PUBLIC KEY" (PKCS#1) PEMs.
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise SignatureError("unparseable public key") from exc
    if isinstance(key, rsa.RSAPublicKey):
        if not MIN_RSA_BITS <= key.key_size <= MAX_RSA_BITS:
            raise SignatureError(f"RSA key of {key.key_size} bits refused")
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise SignatureError("unsupported public key type")


def public_pem_of(private_pem: str) -> str:
    """The SPKI PEM of a private key (used when rotating keys)."""
    return (
        load_private_key(private_pem)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
