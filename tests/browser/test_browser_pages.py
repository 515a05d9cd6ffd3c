"""Public pages in a real browser (Debian's Chromium, headless): hostile content stays text.

A member with a hostile display name creates a group with a hostile name and description and
posts a hostile thread into it; Chromium then loads `/g/{handle}`, the thread and `/@handle` with
JavaScript on. Nothing may run (the title stays ours), no `<script>`, event handler or
`javascript:` link from the content may survive in the DOM, and the text is shown, escaped.
Screenshots of the home page and the group directory must be real PNGs.

Skipped without Chromium, unless FEDINET_REQUIRE_BROWSER=1 (CI with a browser), which fails.
Every Chromium run is bounded (its whole process group is killed after a timeout).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.interop.harness import ServerProcess, unique_name

pytestmark = pytest.mark.browser

CHROMIUM_TIMEOUT = 20.0
SCRIPT = "<script>document.title='pwned'</script>"
IMG = "<img src=x onerror=\"document.title='pwned'\">"
LINK = '<a href="javascript:alert(1)">x</a>'
# RTL override and Cyrillic look-alikes (а, е, о are U+0430, U+0435, U+043E).
SPOOF = "\u202eAdmin \u0430dmin \u0435v\u043e"
HOSTILE = f"{SCRIPT} {IMG} {LINK}"
TOKEN_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        reason = "no chromium on PATH (apt-get install chromium)"
        if os.environ.get("FEDINET_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser required (FEDINET_REQUIRE_BROWSER=1) but {reason}", pytrace=False)
        pytest.skip(reason)
    return path


def run_chromium(profile: Path, *args: str) -> str:
    """Headless Chromium with `args`; stdout. The process group is killed on timeout."""
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=3000",
        *args,
    ]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=CHROMIUM_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"chromium did not finish within {CHROMIUM_TIMEOUT:.0f} s: {args}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return out.decode("utf-8", "replace")


def dump_dom(profile: Path, url: str) -> str:
    return run_chromium(profile, "--dump-dom", url)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    chromium()  # skip before starting a server
    with ServerProcess(tmp_path_factory.mktemp("browser")) as process:
        yield process


@pytest.fixture(scope="module")
def hostile(server: ServerProcess) -> dict[str, str]:
    """A member, a group and a thread whose every visible text is hostile; their paths."""
    name, group = unique_name("eve"), unique_name("g")
    server.create_user(name, "correct horse battery staple", "--display-name", f"{SPOOF} {IMG}")
    result = server.cli(
        "group",
        "create",
        group,
        "--owner",
        name,
        "--display-name",
        f"Hikers {SCRIPT}",
        "--description",
        f"Weekend walks. {HOSTILE} [click](javascript:alert(2))",
    )
    assert result.returncode == 0, result.stderr
    with httpx.Client(base_url=server.origin, timeout=10) as web:
        token = TOKEN_RE.search(web.get("/login").text)
        assert token is not None
        login = {"csrf_token": token.group(1), "handle": name, "password": "correct horse battery staple"}
        assert web.post("/login", data=login).status_code == 303
        token = TOKEN_RE.search(web.get(f"/g/{group}").text)
        assert token is not None
        form = {"csrf_token": token.group(1), "title": f"Ridge {SCRIPT}", "content": f"Who is in? {HOSTILE}"}
        posted = web.post(f"/g/{group}/post", data=form)
        assert posted.status_code == 303, posted.text[:500]
    return {"group": f"/g/{group}", "thread": posted.headers["location"], "profile": f"/@{name}"}


def assert_inert(dom: str) -> None:
    title = re.search(r"<title>(.*?)</title>", dom, re.S)
    assert title is not None and title.group(1).strip() != "pwned"  # the payload would replace it
    assert title.group(1).endswith("fediverse-net") or "·" in title.group(1)
    tags = re.findall(r"<[a-zA-Z][^>]*>", dom)  # real elements only: escaped text has &lt;
    assert not [tag for tag in tags if re.search(r"\son\w+\s*=", tag, re.I)]
    assert not [tag for tag in tags if re.search(r"javascript:", tag, re.I)]
    assert not re.search(r"<script\b[^>]*>[^<]*pwned", dom, re.I)
    assert not [tag for tag in tags if tag.lower().startswith("<img") and 'src="x"' in tag]


@pytest.mark.parametrize("page", ["group", "thread", "profile"])
def test_hostile_content_is_inert_in_chromium(server, hostile, page, tmp_path):
    dom = dump_dom(tmp_path / "profile", server.url(hostile[page]))
    assert "</html>" in dom, dom[:500]
    assert_inert(dom)
    if page in ("group", "thread"):
        assert "&lt;script&gt;document.title='pwned'&lt;/script&gt;" in dom  # shown as text
    if page == "thread":
        assert "Who is in?" in dom
    assert "&lt;img src=x onerror=" in dom  # the display name or content, shown as text
    if page == "profile":
        assert "\u0430dmin \u0435v\u043e" in dom  # the look-alike name is shown as typed, as text


@pytest.mark.parametrize("path", ["/", "/groups"])
def test_screenshots_of_public_pages(server, hostile, path, tmp_path):
    shot = tmp_path / "page.png"
    run_chromium(tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,900", server.url(path))
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5000
    keep = os.environ.get("FEDINET_BROWSER_SHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / f"{path.strip('/') or 'home'}.png")
