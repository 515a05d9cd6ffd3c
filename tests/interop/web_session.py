"""A member using our server through its HTML forms, as a browser would (no JavaScript).

    with WebSession.sign_up(server, unique_name("ann")) as ann:
        ann.follow("@remote@127.0.0.1:8101")
        ann.post("hello")
        assert "hello" in ann.timeline_html()

Every POST first GETs the page that shows the form and takes its `csrf_token`, like a browser.
POSTs answer 303; the page redirected to is fetched so that its flash messages can be checked.
"""

from __future__ import annotations

import html
import json
import re
import time
import urllib.parse
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from tests.interop.harness import DEFAULT_PASSWORD, ServerProcess

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
FLASH = re.compile(r'<p class="flash" role="status">(.*?)</p>', re.S)
FORM = re.compile(r'<form[^>]*\baction="(?P<action>[^"]+)"[^>]*>(?P<body>.*?)</form>', re.S)
HIDDEN = re.compile(r'<input type="hidden" name="(?P<name>[^"]+)" value="(?P<value>[^"]*)">')
ERROR = re.compile(r'<div class="form-error"[^>]*>\s*<p>(.*?)</p>', re.S)


T = TypeVar("T")
WAIT_SECONDS = 20.0  # the in-process inbox and delivery workers normally need well under a second


class WebSessionError(AssertionError):
    """A form was refused or a page did not look as expected (the message says what was shown)."""


def eventually(
    probe: Callable[[], T], check: Callable[[T], bool], what: str, timeout: float = WAIT_SECONDS
) -> T:
    """Call `probe` every 0.1–0.5 s until `check(result)`; after `timeout`, AssertionError (last result)."""
    deadline = time.monotonic() + timeout
    delay = 0.1
    while True:
        result = probe()
        if check(result):
            return result
        if time.monotonic() >= deadline:
            shown = repr(result)
            raise AssertionError(f"not within {timeout:.0f} s: {what} (last seen: {shown[:500]})")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


class WebSession:
    """An httpx client with a logged-in member's session cookie on one ServerProcess."""

    def __init__(self, server: ServerProcess, name: str, *, timeout: float = 30.0) -> None:
        self.server = server
        self.name = name
        self.client = httpx.Client(base_url=server.origin, follow_redirects=False, timeout=timeout)

    # -- starting a session --------------------------------------------------------------------

    @classmethod
    def sign_up(cls, server: ServerProcess, name: str, password: str = DEFAULT_PASSWORD) -> WebSession:
        """A new member through /signup (open registration logs in at once)."""
        session = cls(server, name)
        fields = {"handle": name, "display_name": name.title(), "password": password, "reason": "interop"}
        page = session.submit("/signup", "/signup", fields)
        if "/signup" in str(page.url) or page.status_code != 200:
            raise WebSessionError(
                f"sign-up of {name} failed ({page.status_code}): {session._shown(page.text)}"
            )
        session._expect_logged_in()
        return session

    @classmethod
    def log_in(cls, server: ServerProcess, name: str, password: str = DEFAULT_PASSWORD) -> WebSession:
        """A session for an existing member (e.g. made with `server.create_user`) through /login."""
        session = cls(server, name)
        page = session.submit("/login", "/login", {"handle": name, "password": password})
        if "/login" in str(page.url):
            raise WebSessionError(f"login of {name} failed ({page.status_code}): {session._shown(page.text)}")
        session._expect_logged_in()
        return session

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> WebSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ------------------------------------------------------------------------------

    def get(self, path: str, **params: str) -> httpx.Response:
        response = self.client.get(path, params=params or None)
        if response.is_redirect:
            response = self.client.get(response.headers["location"])
        return response

    def csrf(self, page_path: str) -> str:
        """The CSRF token of the form on `page_path` (GET, like a browser opening the page)."""
        page = self.get(page_path)
        match = CSRF.search(page.text)
        if match is None:
            raise WebSessionError(f"no csrf_token on {page_path} ({page.status_code})")
        return html.unescape(match.group(1))

    def submit(self, page_path: str, action: str, fields: dict[str, str]) -> httpx.Response:
        """GET `page_path`, POST `fields` plus its CSRF token to `action`, follow one redirect."""
        data = {"csrf_token": self.csrf(page_path), **fields}
        response = self.client.post(action, data=data)
        if response.status_code == 303:
            return self.client.get(response.headers["location"])
        if response.status_code >= 400:
            raise WebSessionError(
                f"POST {action} answered {response.status_code}: {self._shown(response.text)}"
            )
        return response

    def _expect_logged_in(self) -> None:
        home = self.get("/")
        if f'href="/@{self.name}"' not in home.text:
            raise WebSessionError(f"{self.name} is not logged in: {self._shown(home.text)}")

    @staticmethod
    def _shown(page: str) -> str:
        messages = FLASH.findall(page) + ERROR.findall(page)
        return " | ".join(html.unescape(m.strip()) for m in messages) or page[:300]

    @staticmethod
    def flashes(page: httpx.Response) -> list[str]:
        return [html.unescape(m.strip()) for m in FLASH.findall(page.text)]

    # -- finding and following -----------------------------------------------------------------

    def search(self, query: str) -> httpx.Response:
        """The /search card for a handle or actor URL (404/400 pages raise, with their message)."""
        page = self.get("/search", q=query)
        if page.status_code != 200:
            raise WebSessionError(f"search {query!r} answered {page.status_code}: {self._shown(page.text)}")
        return page

    @staticmethod
    def forms(page: str) -> list[tuple[str, dict[str, str]]]:
        """(action, hidden fields) of every form on a page."""
        found = []
        for match in FORM.finditer(page):
            hidden = {m["name"]: html.unescape(m["value"]) for m in HIDDEN.finditer(match["body"])}
            found.append((html.unescape(match["action"]), hidden))
        return found

    def _card_form(self, query: str, action: str) -> tuple[str, dict[str, str]]:
        search_path = "/search?" + urllib.parse.urlencode({"q": query})
        page = self.search(query)
        for form_action, hidden in self.forms(page.text):
            if form_action == action and "actor_id" in hidden:
                return search_path, hidden
        raise WebSessionError(f"no {action} form on the card for {query!r}: {self._shown(page.text)}")

    def actor_id(self, query: str) -> int:
        """Our database id of the actor `query` names (from the card's Follow/Unfollow form)."""
        page = self.search(query)
        for action, hidden in self.forms(page.text):
            if action in ("/follow", "/unfollow") and "actor_id" in hidden:
                return int(hidden["actor_id"])
        raise WebSessionError(f"no follow form on the card for {query!r}: {self._shown(page.text)}")

    def relation(self, query: str) -> str:
        """How this member follows `query`, as the card shows it: none, pending or accepted."""
        page = self.search(query).text
        actions = {action for action, _ in self.forms(page)}
        if "/follow" in actions:
            return "none"
        if "/unfollow" in actions:
            return "pending" if '<span class="status">Requested</span>' in page else "accepted"
        raise WebSessionError(f"no follow state on the card for {query!r}: {self._shown(page)}")

    def follow(self, query: str) -> int:
        """Search `query` (handle or actor URL) and press Follow; returns the actor's DB id."""
        search_path, hidden = self._card_form(query, "/follow")
        page = self.submit(search_path, "/follow", {"actor_id": hidden["actor_id"], "back": hidden["back"]})
        messages = self.flashes(page)
        if not any(m.startswith("Follow request sent") for m in messages):
            raise WebSessionError(f"follow {query!r} was not sent: {messages or self._shown(page.text)}")
        return int(hidden["actor_id"])

    def unfollow(self, query: str) -> None:
        """Search `query` and press Unfollow (or Cancel request)."""
        search_path, hidden = self._card_form(query, "/unfollow")
        page = self.submit(search_path, "/unfollow", {"actor_id": hidden["actor_id"], "back": hidden["back"]})
        messages = self.flashes(page)
        wanted = ("You no longer follow", "Your follow request to")
        if not any(m.startswith(wanted) for m in messages):
            raise WebSessionError(f"unfollow {query!r} failed: {messages or self._shown(page.text)}")

    # -- posting and reading -------------------------------------------------------------------

    def post(self, text: str, visibility: str = "public") -> None:
        """Publish from the home page's compose form."""
        page = self.submit("/", "/notes", {"content": text, "visibility": visibility, "back": "/"})
        messages = self.flashes(page)
        if "Your post is published." not in messages:
            raise WebSessionError(f"post was not published: {messages or self._shown(page.text)}")

    def timeline_html(self, page: int = 1) -> str:
        """The logged-in home page (own notes and those of accepted follows)."""
        response = self.get("/", **({"page": str(page)} if page > 1 else {}))
        if response.status_code != 200 or "<h1>Home</h1>" not in response.text:
            raise WebSessionError(f"home timeline not shown ({response.status_code})")
        return response.text

    def followers_page(self) -> str:
        """/settings/followers: requests, followers and the accounts one follows."""
        response = self.get("/settings/followers")
        if response.status_code != 200:
            raise WebSessionError(f"/settings/followers answered {response.status_code}")
        return response.text

    def pending_requests(self) -> list[int]:
        """Follow ids waiting for approval on /settings/followers."""
        return [
            int(action.split("/")[3])
            for action, _ in self.forms(self.followers_page())
            if re.fullmatch(r"/settings/followers/\d+/approve", action)
        ]

    def approve_all(self) -> int:
        """Approve every pending follow request; returns how many were approved."""
        pending = self.pending_requests()
        for follow_id in pending:
            page = self.submit("/settings/followers", f"/settings/followers/{follow_id}/approve", {})
            if not any(m.endswith("now follows you.") for m in self.flashes(page)):
                raise WebSessionError(f"approving follow {follow_id} failed: {self._shown(page.text)}")
        return len(pending)

    def set_manual_approval(self, on: bool) -> None:
        """Tick or clear "approve followers by hand" on /settings/profile, keeping the other fields."""
        page = self.get("/settings/profile").text
        fields: dict[str, str] = {}
        for name in ("display_name", "interests", "avatar_url"):
            match = re.search(rf'<input id="{name}" name="{name}"[^>]*?value="([^"]*)"', page)
            fields[name] = html.unescape(match.group(1)) if match else ""
        bio = re.search(r'<textarea id="bio" name="bio"[^>]*>(.*?)</textarea>', page, re.S)
        fields["bio"] = html.unescape(bio.group(1)) if bio else ""
        if re.search(r'<input id="discoverable"[^>]*\bchecked\b', page):
            fields["discoverable"] = "yes"
        if on:
            fields["manually_approves_followers"] = "yes"
        saved = self.submit("/settings/profile", "/settings/profile", fields)
        if "Your profile is saved." not in self.flashes(saved):
            raise WebSessionError(f"profile not saved: {self._shown(saved.text)}")

    # -- ActivityPub views of this member (unsigned JSON GETs) ---------------------------------

    def collection(self, which: str) -> dict[str, Any]:
        response = self.client.get(
            f"/users/{self.name}/{which}", headers={"Accept": "application/activity+json"}
        )
        response.raise_for_status()
        document: dict[str, Any] = response.json()
        return document

    def followers_total(self) -> int:
        return int(self.collection("followers")["totalItems"])

    def following_total(self) -> int:
        return int(self.collection("following")["totalItems"])


def inbox_accepted(server: ServerProcess) -> dict[str, dict[str, Any]]:
    """The server's "inbox accepted" log entries (activity, type, actor, signer, scheme) by activity id."""
    found: dict[str, dict[str, Any]] = {}
    for line in server.log_path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("msg") == "inbox accepted":
            found[str(entry.get("activity"))] = entry
    return found
