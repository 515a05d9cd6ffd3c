"""Sign-up in each registration mode, log in and out, CSRF and form limits, admin approval."""

from __future__ import annotations

import re

import pytest

from fediverse_net.db.models import Account, Actor, PublicKey
from fediverse_net.services.members import NewMember, create_member

pytestmark = pytest.mark.anyio
TOKEN_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def settings(settings, request):
    """The conftest settings, in the registration mode given by indirect parametrization."""
    return settings.with_(registration_mode=getattr(request, "param", "open"))


async def token_from(client, path="/login"):
    response = await client.get(path)
    match = TOKEN_RE.search(response.text)
    assert match, response.text
    return match.group(1)


async def post_form(client, path, data, *, token_page="/login"):
    token = await token_from(client, token_page)
    return await client.post(path, data={"csrf_token": token, **data})


async def sign_up(client, handle="alice", password="correct horse", **extra):
    return await post_form(client, "/signup", {"handle": handle, "password": password, **extra})


async def log_in(client, handle="alice", password="correct horse"):
    return await post_form(client, "/login", {"handle": handle, "password": password})


async def member(settings, handle, **kwargs):
    account = await create_member(settings, NewMember(handle=handle, password="correct horse", **kwargs))
    await account.fetch_related("actor")
    return account


# --- sign-up ----------------------------------------------------------------------------------------


async def test_open_sign_up_creates_an_active_member_and_logs_them_in(client):
    page = await client.get("/signup")
    assert page.status_code == 200
    assert "<h1>Sign up</h1>" in page.text
    response = await sign_up(client, handle="Alice", display_name="Alice A.")
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    account = await Account.get(actor__handle="alice").select_related("actor")
    assert account.approved is True
    assert account.actor.name == "Alice A."
    home = await client.get("/")
    assert "Welcome! Your account is ready." in home.text
    assert "Log out" in home.text
    assert "<h1>Home</h1>" in home.text


@pytest.mark.parametrize("settings", ["approval"], indirect=True)
async def test_approval_sign_up_keeps_the_answer_and_waits_for_an_admin(client):
    page = await client.get("/signup")
    assert "Why do you want to join?" in page.text
    assert "<h1>Ask to join</h1>" in page.text
    response = await sign_up(client, reason="I run the Leipzig board games night.")
    assert response.status_code == 200
    assert "Your request is waiting for an admin" in response.text
    account = await Account.get(actor__handle="alice")
    assert account.approved is False
    assert account.application_text == "I run the Leipzig board games night."
    assert "Log out" not in (await client.get("/")).text
    # The right password tells them they are still waiting; they are not logged in.
    login = await log_in(client)
    assert login.status_code == 400
    assert "waiting for an admin" in login.text
    assert (await client.get("/settings/profile")).headers["location"] == "/login"


@pytest.mark.parametrize("settings", ["approval"], indirect=True)
async def test_approval_sign_up_needs_an_answer(client):
    response = await sign_up(client, reason="   ")
    assert response.status_code == 400
    assert "Please tell the admins why you want to join." in response.text
    assert not await Account.exists()


@pytest.mark.parametrize("settings", ["closed"], indirect=True)
async def test_closed_sign_up_says_so_and_refuses_posts(client):
    page = await client.get("/signup")
    assert page.status_code == 403
    assert "Sign-ups are closed" in page.text
    assert '<form method="post" action="/signup"' not in page.text
    response = await sign_up(client)
    assert response.status_code == 403
    assert "Sign-ups are closed on this server." in response.text
    assert not await Actor.filter(handle="alice").exists()


async def test_duplicate_handle_is_refused_in_any_case_and_nothing_is_created(client, settings):
    await member(settings, "alice")
    before = (await Actor.all().count(), await Account.all().count(), await PublicKey.all().count())
    response = await sign_up(client, handle="ALICE")
    assert response.status_code == 409
    assert "The handle &#39;alice&#39; is already taken." in response.text
    assert (await Actor.all().count(), await Account.all().count(), await PublicKey.all().count()) == before


@pytest.mark.parametrize("handle", ["bad handle", "élise", "a" * 31, "", "admin", "x<script>"])
async def test_invalid_handle_is_refused_with_a_message(client, handle):
    response = await sign_up(client, handle=handle)
    assert response.status_code == 400
    assert "A handle is 1 to 30 characters" in response.text or "is reserved" in response.text
    assert "<script>" not in response.text
    assert not await Account.exists()


async def test_short_password_is_refused(client):
    response = await sign_up(client, password="short")
    assert response.status_code == 400
    assert "at least 8 characters" in response.text
    assert not await Account.exists()


async def test_oversized_display_name_is_refused_with_a_message(client):
    response = await sign_up(client, display_name="x" * 101)
    assert response.status_code == 400
    assert "The display name is too long: at most 100 characters, you wrote 101." in response.text
    assert not await Account.exists()


async def test_field_over_the_form_limit_is_refused_with_a_message(client):
    response = await sign_up(client, display_name="x" * 10_001)
    assert response.status_code == 400
    assert "is too long: at most 10000 characters" in response.text
    assert not await Account.exists()


async def test_body_over_64_kib_is_refused_with_a_page(client):
    response = await sign_up(client, display_name="x" * 70_000)
    assert response.status_code == 413
    assert "This form is too large" in response.text
    assert response.headers["content-type"].startswith("text/html")
    assert not await Account.exists()


async def test_non_form_post_is_refused(client):
    response = await client.post("/signup", json={"handle": "alice", "password": "correct horse"})
    assert response.status_code == 400
    assert not await Account.exists()


# --- CSRF -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", "wrong", "ü-not-ascii"])
async def test_sign_up_without_the_right_csrf_token_is_refused(client, token):
    await client.get("/signup")  # a session exists, with its own token
    data = {"handle": "alice", "password": "correct horse"}
    if token is not None:
        data["csrf_token"] = token
    response = await client.post("/signup", data=data)
    assert response.status_code == 403
    assert "This form expired, please try again." in response.text
    assert not await Account.exists()


async def test_csrf_token_from_another_session_is_refused(app, client, settings):
    import httpx

    token = await token_from(client)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=settings.origin) as other:
        await other.get("/login")
        response = await other.post("/signup", data={"csrf_token": token, "handle": "a", "password": "x" * 9})
    assert response.status_code == 403
    assert not await Account.exists()


async def test_profile_edit_without_csrf_changes_nothing(client, settings):
    await member(settings, "alice", display_name="Alice")
    await log_in(client)
    response = await client.post("/settings/profile", data={"display_name": "Mallory"})
    assert response.status_code == 403
    assert (await Actor.get(handle="alice")).name == "Alice"


# --- log in, log out -------------------------------------------------------------------------------


async def test_wrong_password_and_unknown_user_get_the_same_answer(client, settings):
    await member(settings, "alice")
    token = await token_from(client)
    form = {"csrf_token": token, "password": "not it!!"}
    wrong = await client.post("/login", data={**form, "handle": "alice"})
    unknown = await client.post("/login", data={**form, "handle": "bobby"})
    assert wrong.status_code == unknown.status_code == 400
    assert "Wrong handle or password." in wrong.text
    blank = 'value=""'
    assert wrong.text.replace('value="alice"', blank) == unknown.text.replace('value="bobby"', blank)


async def test_log_in_starts_a_new_session_and_log_out_ends_it(client, settings):
    await member(settings, "alice")
    old_token = await token_from(client)
    response = await client.post(
        "/login", data={"csrf_token": old_token, "handle": "Alice", "password": "correct horse"}
    )
    assert response.status_code == 303
    assert "fedinet_session" in response.headers["set-cookie"]
    assert "secure" in response.headers["set-cookie"].lower()
    assert "httponly" in response.headers["set-cookie"].lower()
    assert (await client.get("/settings/profile")).status_code == 200
    # The token of the anonymous session is not valid after logging in.
    stale = await client.post("/logout", data={"csrf_token": old_token})
    assert stale.status_code == 403
    assert (await client.get("/logout")).status_code == 405
    new_token = await token_from(client, "/settings/profile")
    assert new_token != old_token
    out = await client.post("/logout", data={"csrf_token": new_token})
    assert out.status_code == 303
    after = await client.get("/settings/profile")
    assert after.status_code == 303
    assert after.headers["location"] == "/login"
    assert "You are logged out." in (await client.get("/")).text


async def test_logged_in_member_visiting_login_goes_home(client, settings):
    await member(settings, "alice")
    await log_in(client)
    response = await client.get("/login")
    assert response.status_code == 303
    assert response.headers["location"] == "/"


async def test_deleted_member_session_is_no_longer_valid(client, settings):
    from fediverse_net.deps import utcnow

    account = await member(settings, "alice")
    await log_in(client)
    account.actor.deleted_at = utcnow()
    await account.actor.save()
    assert (await client.get("/settings/profile")).status_code == 303


# --- admin approval ---------------------------------------------------------------------------------


@pytest.mark.parametrize("settings", ["approval"], indirect=True)
async def test_admin_approves_a_pending_member_who_can_then_log_in(client, settings):
    await member(settings, "root_admin", is_admin=True)
    await sign_up(client, handle="bob", reason="I organise <b>hikes</b>.")
    await log_in(client, "root_admin")
    page = await client.get("/admin/accounts")
    assert page.status_code == 200
    assert "@bob" in page.text
    assert "I organise &lt;b&gt;hikes&lt;/b&gt;." in page.text
    bob = await Account.get(actor__handle="bob")
    token = TOKEN_RE.search(page.text).group(1)
    response = await client.post(f"/admin/accounts/{bob.id}/approve", data={"csrf_token": token})
    assert response.status_code == 303
    assert await Account.filter(id=bob.id, approved=True).exists()
    assert "@bob can now log in." in (await client.get("/admin/accounts")).text
    await client.post("/logout", data={"csrf_token": await token_from(client, "/settings/profile")})
    assert (await log_in(client, "bob")).status_code == 303


@pytest.mark.parametrize("settings", ["approval"], indirect=True)
async def test_admin_rejects_a_pending_member_and_the_handle_is_free_again(client, settings):
    await member(settings, "root_admin", is_admin=True)
    await sign_up(client, handle="carol", reason="spam spam")
    carol = await Account.get(actor__handle="carol").select_related("actor")
    await log_in(client, "root_admin")
    token = await token_from(client, "/admin/accounts")
    response = await client.post(f"/admin/accounts/{carol.id}/reject", data={"csrf_token": token})
    assert response.status_code == 303
    assert not await Account.filter(id=carol.id).exists()
    assert not await Actor.filter(id=carol.actor.id).exists()
    assert not await PublicKey.filter(actor_id=carol.actor.id).exists()
    # Handled twice: a clear message, not an error.
    again = await client.post(f"/admin/accounts/{carol.id}/reject", data={"csrf_token": token})
    assert again.status_code == 404
    assert "already handled" in again.text


@pytest.mark.parametrize("settings", ["approval"], indirect=True)
async def test_only_admins_see_and_decide_sign_up_requests(client, settings):
    await member(settings, "alice")
    pending = await member(settings, "dave", approved=False, application_text="hello")
    anonymous = await client.get("/admin/accounts")
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login"
    await log_in(client)
    assert (await client.get("/admin/accounts")).status_code == 403
    token = await token_from(client, "/settings/profile")
    response = await client.post(f"/admin/accounts/{pending.id}/approve", data={"csrf_token": token})
    assert response.status_code == 403
    assert await Account.filter(id=pending.id, approved=False).exists()


async def test_admin_decision_needs_csrf(client, settings):
    await member(settings, "root_admin", is_admin=True)
    pending = await member(settings, "dave", approved=False)
    await log_in(client, "root_admin")
    response = await client.post(f"/admin/accounts/{pending.id}/approve", data={"x": "1"})
    assert response.status_code == 403
    assert await Account.filter(id=pending.id, approved=False).exists()
