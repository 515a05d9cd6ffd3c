"""Settings: one typed, frozen object read once from the environment (prefix FEDINET_).

Nothing else in the package reads the environment; `Settings` is passed in. Every variable is
listed with its default in `deploy/env.example` and in the README.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

PREFIX = "FEDINET_"
RegistrationMode = Literal["open", "approval", "closed"]
REGISTRATION_MODES: tuple[RegistrationMode, ...] = ("open", "approval", "closed")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})
RATE_SETTINGS = (
    "rate_limit_signup",
    "rate_limit_login",
    "rate_limit_post",
    "rate_limit_follow",
    "rate_limit_report",
    "rate_limit_invite",
    "rate_limit_inbox",
    "rate_limit_inbox_failures",
    "rate_limit_remote_follows",
    "rate_limit_remote_joins",
)
_RATE_RE = re.compile(r"\s*\d{1,9}\s*/\s*(?:[1-9]\d{0,8})?\s*[smhd]?\s*")


class ConfigError(ValueError):
    """A setting has an invalid value; the message names the variable."""


def _bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"{PREFIX}{name} must be true or false, not {value!r}")


def _int(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{PREFIX}{name} must be an integer, not {value!r}") from None


def _host_of(domain: str) -> str:
    return domain.rsplit(":", 1)[0] if not domain.startswith("[") else domain.split("]")[0] + "]"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the instance is configured with. Tests build one directly."""

    domain: str = "127.0.0.1:8000"
    scheme: Literal["http", "https"] = "http"
    data_dir: Path = Path("data")
    database_url: str = ""
    secret_key: str = field(default="", repr=False)
    registration_mode: RegistrationMode = "open"
    allow_private_addresses: bool = False
    authorized_fetch: bool = False
    log_level: str = "INFO"
    run_workers: bool = True
    instance_name: str = "fediverse-net"
    instance_description: str = "A community server for groups and meetups."
    max_body_bytes: int = 1_048_576
    delivery_concurrency: int = 64
    delivery_per_host: int = 4
    # Inbox overload protection (security matrix F13), per process: POSTs verified/stored at once,
    # more waiting for a turn, then 503 + Retry-After; and stored activities waiting to be
    # processed above which new ones get 503 (0: no bound).
    inbox_max_in_flight: int = 64
    inbox_max_backlog: int = 512
    inbox_max_pending: int = 100_000
    inbox_retry_after: int = 30
    # Rate limits, `COUNT/PERIOD` (period in seconds or with s/m/h/d); `0/1` disables one.
    rate_limits_enabled: bool = True
    rate_limit_signup: str = "10/1h"  # sign-ups per IP
    rate_limit_login: str = "20/5m"  # login attempts per IP, and per handle
    rate_limit_post: str = "30/5m"  # posts and replies per member
    rate_limit_follow: str = "60/1h"  # follow requests per member
    rate_limit_report: str = "10/1h"  # reports per member
    rate_limit_invite: str = "30/1h"  # group invitations per member
    rate_limit_inbox: str = "1200/5m"  # inbox POSTs per IP
    rate_limit_inbox_failures: str = "30/5m"  # rejected (401) inbox POSTs per IP before 429
    rate_limit_remote_follows: str = "30/1m"  # Follow activities per remote domain
    rate_limit_remote_joins: str = "30/1m"  # Join activities (group membership requests) per remote domain
    send_blocks: bool = True  # deliver Block to the blocked remote actor (Mastodon does)
    # Uploaded pictures (services/media.py): where they are kept (default <data dir>/media) and the
    # largest accepted upload in bytes (413 above it).
    media_dir: Path | None = None
    media_max_bytes: int = 8 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.registration_mode not in REGISTRATION_MODES:
            raise ConfigError(f"{PREFIX}REGISTRATION_MODE must be one of {', '.join(REGISTRATION_MODES)}")
        if self.scheme not in ("http", "https"):
            raise ConfigError(f"{PREFIX}SCHEME must be http or https")
        domain = self.domain.strip().lower().rstrip("/")
        if not domain or "/" in domain or "@" in domain or " " in domain:
            raise ConfigError(f"{PREFIX}DOMAIN must be host[:port], not {self.domain!r}")
        object.__setattr__(self, "domain", domain)
        for name in RATE_SETTINGS:
            if not _RATE_RE.fullmatch(getattr(self, name)):
                raise ConfigError(f"{PREFIX}{name.upper()} must look like 30/5m, not {getattr(self, name)!r}")
        if not 1024 <= self.media_max_bytes <= 100 * 1024 * 1024:
            raise ConfigError(f"{PREFIX}MEDIA_MAX_BYTES must be between 1024 and 104857600")
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite://{self.data_dir / 'fediverse.sqlite3'}")

    @property
    def origin(self) -> str:
        """The one spelling of our origin used in every id: scheme://host[:port]."""
        return f"{self.scheme}://{self.domain}"

    @property
    def media_root(self) -> Path:
        """The directory of uploaded pictures (served at /media/, or by the proxy directly)."""
        return self.media_dir if self.media_dir is not None else self.data_dir / "media"

    @property
    def host(self) -> str:
        """The host without its port (WebFinger matching accepts both)."""
        return _host_of(self.domain)

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read FEDINET_* variables; create the data dir and a secret key on first run."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            return env.get(PREFIX + name)

        domain = get("DOMAIN") or "127.0.0.1:8000"
        scheme = get("SCHEME") or ("http" if _host_of(domain.lower()) in LOOPBACK_HOSTS else "https")
        data_dir = Path(get("DATA_DIR") or "data")
        kwargs: dict[str, Any] = {
            "domain": domain,
            "scheme": scheme,
            "data_dir": data_dir,
            "database_url": get("DATABASE_URL") or "",
            "registration_mode": get("REGISTRATION_MODE") or "open",
            "log_level": (get("LOG_LEVEL") or "INFO").upper(),
        }
        booleans = (
            "ALLOW_PRIVATE_ADDRESSES",
            "AUTHORIZED_FETCH",
            "RUN_WORKERS",
            "RATE_LIMITS_ENABLED",
            "SEND_BLOCKS",
        )
        for name in booleans:
            if (value := get(name)) is not None:
                kwargs[name.lower()] = _bool(name, value)
        for name in ("MAX_BODY_BYTES", "DELIVERY_CONCURRENCY", "DELIVERY_PER_HOST", "MEDIA_MAX_BYTES"):
            if (value := get(name)) is not None:
                kwargs[name.lower()] = _int(name, value)
        for name in ("INSTANCE_NAME", "INSTANCE_DESCRIPTION", *(n.upper() for n in RATE_SETTINGS)):
            if (value := get(name)) is not None:
                kwargs[name.lower()] = value
        if media_dir := get("MEDIA_DIR"):
            kwargs["media_dir"] = Path(media_dir)
        for name in ("INBOX_MAX_IN_FLIGHT", "INBOX_MAX_BACKLOG", "INBOX_MAX_PENDING", "INBOX_RETRY_AFTER"):
            if (value := get(name)) is not None:
                kwargs[name.lower()] = _int(name, value)
        kwargs["secret_key"] = get("SECRET_KEY") or load_or_create_secret(data_dir)
        return cls(**kwargs)


def load_or_create_secret(data_dir: Path) -> str:
    """The secret key kept in `<data_dir>/secret_key`, generated (mode 0600) on first run."""
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key
