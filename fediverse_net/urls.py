"""The URL layout of our ids. Ids are stable forever and use one spelling of the origin."""

from __future__ import annotations

import uuid
from dataclasses import dataclass


def new_token() -> str:
    """A time-ordered-enough unique token for object and activity ids."""
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Urls:
    origin: str  # scheme://host[:port], no trailing slash

    @property
    def instance_actor(self) -> str:
        return f"{self.origin}/actor"

    @property
    def shared_inbox(self) -> str:
        return f"{self.origin}/inbox"

    def member(self, handle: str) -> str:
        return f"{self.origin}/users/{handle}"

    def member_profile(self, handle: str) -> str:
        return f"{self.origin}/@{handle}"

    def group(self, handle: str) -> str:
        return f"{self.origin}/groups/{handle}"

    def group_profile(self, handle: str) -> str:
        return f"{self.origin}/g/{handle}"

    def note(self, token: str) -> str:
        return f"{self.origin}/notes/{token}"

    def activity(self, token: str) -> str:
        return f"{self.origin}/activities/{token}"

    def is_local(self, url: str) -> bool:
        return url == self.origin or url.startswith(self.origin + "/") or url.startswith(self.origin + "#")
