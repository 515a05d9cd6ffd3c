"""Uploaded avatars (security matrix row 29, media): sniffed by Pillow, bombs and broken files
refused with nothing stored, metadata stripped, served safely from /media/, federated as `icon`.

Every picture is made here with Pillow: no binary fixtures.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import struct
import zlib
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageCms

from fediverse_net.db.models import Actor, OutgoingActivity
from fediverse_net.services import media
from fediverse_net.services.errors import ServiceError
from fediverse_net.services.groups.core import GroupInput, actor_values, create_group
from tests.web.test_social import PASSWORD, member, remote_follower, token_from

pytestmark = pytest.mark.anyio

AP = "application/activity+json"
MEDIA_URL = re.compile(r"https://fedi\.test/media/([0-9a-f]{64})\.webp")
RED, BLUE = (220, 20, 20), (20, 20, 220)


# --- pictures made on the spot ----------------------------------------------------------------------


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def sideways_photo_with_gps() -> bytes:
    """A 600×300 JPEG stored sideways: red left half, blue right half, EXIF orientation 6 (turn
    90° clockwise to show it), GPS coordinates, a camera model, a comment and an ICC profile."""
    image = Image.new("RGB", (600, 300), RED)
    image.paste(BLUE, (300, 0, 600, 300))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° CW
    exif[0x0110] = "SecretCam 3000"  # Model
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)}  # GPS IFD
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return encode(image, "JPEG", exif=exif, comment=b"taken at home", icc_profile=icc, quality=95)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims `width`×`height` with almost no data: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b"")
    )


def small_png(color=(0, 128, 0)) -> bytes:
    return encode(Image.new("RGB", (64, 64), color), "PNG")


SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>'
HTML = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>"


# --- helpers ----------------------------------------------------------------------------------------


def stored_files(settings) -> list[str]:
    root: Path = settings.media_root
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


async def upload_profile_picture(
    http: httpx.AsyncClient,
    data: bytes,
    filename: str = "me.jpg",
    content_type: str = "image/jpeg",
    **fields: str,
) -> httpx.Response:
    token = await token_from(http, "/settings/profile")
    form = {"csrf_token": token, "display_name": "Alice", "bio": "", "interests": "", "avatar_url": ""}
    return await http.post(
        "/settings/profile",
        data={**form, **fields},
        files={"avatar_file": (filename, data, content_type)},
    )


@pytest.fixture
async def as_alice(alice, browsers):
    return await browsers("alice")


# --- a good upload ----------------------------------------------------------------------------------


async def test_uploaded_photo_is_upright_and_loses_every_metadata(app, settings, as_alice, alice, bob):
    await remote_follower(app, bob, alice)
    original = sideways_photo_with_gps()
    assert b"SecretCam" in original and b"taken at home" in original  # the metadata is really there
    before = (await as_alice.get("/users/alice", headers={"Accept": AP})).json()
    assert "icon" not in before  # (and now cached: the upload must refresh it)

    response = await upload_profile_picture(as_alice, original)

    assert response.status_code == 303, response.text
    actor = await Actor.get(id=alice.id)
    match = MEDIA_URL.fullmatch(actor.avatar_url or "")
    assert match, actor.avatar_url
    assert stored_files(settings) == [f"{match.group(1)}.webp"]

    served = await as_alice.get(f"/media/{match.group(1)}.webp")
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/webp"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert "immutable" in served.headers["cache-control"]
    assert hashlib.sha256(served.content).hexdigest() == match.group(1)  # named by its content

    picture = Image.open(io.BytesIO(served.content))
    assert picture.format == "WEBP"
    # Upright: turned to 300×600, scaled to fit 400×400 with its aspect kept.
    assert picture.size == (200, 400)
    rgb = picture.convert("RGB")
    top, bottom = rgb.getpixel((100, 50)), rgb.getpixel((100, 350))
    assert top[0] > 150 and top[2] < 80, top  # the red half is on top
    assert bottom[2] > 150 and bottom[0] < 80, bottom  # the blue half below
    # No metadata of any kind survives.
    assert dict(picture.getexif()) == {}
    assert not {"exif", "xmp", "icc_profile", "comment"} & set(picture.info)
    for marker in (b"EXIF", b"Exif", b"XMP", b"ICCP", b"SecretCam", b"taken at home", b"GPS"):
        assert marker not in served.content, marker

    # The actor document's icon is the served file, and followers get an Update saying so.
    document = (await as_alice.get("/users/alice", headers={"Accept": AP})).json()
    assert document["icon"] == {"type": "Image", "mediaType": "image/webp", "url": actor.avatar_url}
    updates = [json.loads(o.body) for o in await OutgoingActivity.filter(type="Update")]
    assert [u["object"]["icon"]["url"] for u in updates] == [actor.avatar_url]
    # And our own pages show it (CSP img-src allows our origin).
    page = await as_alice.get("/@alice")
    assert f'src="{actor.avatar_url}"' in page.text
    assert "img-src https: http:" in page.headers["content-security-policy"]


async def test_transparent_png_keeps_its_alpha_and_large_jpeg_is_scaled(settings, as_alice):
    transparent = Image.new("RGBA", (500, 500), (0, 0, 0, 0))
    transparent.paste((0, 200, 0, 255), (100, 100, 400, 400))
    response = await upload_profile_picture(as_alice, encode(transparent, "PNG"), "a.png", "image/png")
    assert response.status_code == 303
    (name,) = stored_files(settings)
    picture = Image.open(settings.media_root / name)
    assert picture.size == (400, 400)
    assert picture.mode == "RGBA"
    assert picture.getpixel((5, 5))[3] == 0 and picture.getpixel((200, 200))[3] == 255

    # A 12-megapixel photo is decoded scaled down (JPEG draft) and stored at 400×300.
    photo = encode(Image.new("RGB", (4000, 3000), BLUE), "JPEG")
    response = await upload_profile_picture(as_alice, photo)
    assert response.status_code == 303
    (name,) = stored_files(settings)  # the replaced PNG is gone
    assert Image.open(settings.media_root / name).size == (400, 300)


async def test_phone_jpeg_with_a_second_image_is_accepted(settings, as_alice):
    """Recent phones put an HDR gain map after the photo (MPF); Pillow calls such a JPEG "MPO"."""
    photo, gain_map = Image.new("RGB", (800, 600), RED), Image.new("RGB", (800, 600), BLUE)
    data = encode(photo, "MPO", save_all=True, append_images=[gain_map])
    assert Image.open(io.BytesIO(data)).format == "MPO"
    response = await upload_profile_picture(as_alice, data)
    assert response.status_code == 303, response.text
    (name,) = stored_files(settings)
    picture = Image.open(settings.media_root / name)
    assert picture.size == (400, 300) and getattr(picture, "n_frames", 1) == 1
    assert picture.convert("RGB").getpixel((200, 150))[0] > 150  # the photo, not the gain map


async def test_polyglot_png_is_re_encoded_so_its_payload_is_gone(settings, as_alice):
    """A valid PNG carrying HTML in a text chunk and after its end: the pixels are kept, the
    bytes are not, and the file is served as image/webp with nosniff."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", HTML.decode())
    polyglot = encode(Image.new("RGB", (50, 50), RED), "PNG", pnginfo=info) + HTML
    response = await upload_profile_picture(as_alice, polyglot, "page.html", "text/html")
    assert response.status_code == 303
    url = (await Actor.get(handle="alice")).avatar_url
    served = await as_alice.get(url.removeprefix("https://fedi.test"))
    assert served.headers["content-type"] == "image/webp"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert b"<script" not in served.content and b"html" not in served.content.lower()


# --- bad input: refused, nothing stored, the previous picture kept ---------------------------------


def _truncated_jpeg() -> bytes:
    data = encode(Image.effect_noise((300, 300), 60).convert("RGB"), "JPEG")
    return data[: len(data) // 2]


def _truncated_png() -> bytes:
    data = encode(Image.effect_noise((300, 300), 60).convert("RGB"), "PNG")
    return data[: len(data) // 2]


BAD_UPLOADS = {
    "plain text": (b"just some words, not a picture", "me.jpg", "image/jpeg", "not a picture we can use"),
    "svg named .png": (SVG, "me.png", "image/png", "not a picture we can use"),
    "html named .png": (HTML, "me.png", "image/png", "not a picture we can use"),
    "bmp (not accepted)": (encode(Image.new("RGB", (20, 20)), "BMP"), "me.bmp", "image/bmp", "not a picture"),
    "truncated jpeg": (_truncated_jpeg(), "me.jpg", "image/jpeg", "damaged or incomplete"),
    "truncated png": (_truncated_png(), "me.png", "image/png", "damaged or incomplete"),
    "pixel bomb 100000²": (png_header_only(100_000, 100_000), "me.png", "image/png", "too big"),
    "pixel bomb 8000²": (png_header_only(8000, 8000), "me.png", "image/png", "8000×8000 pixels"),
    "empty file": (b"", "me.png", "image/png", "The picture file is empty."),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
async def test_bad_upload_is_refused_and_stores_nothing(settings, as_alice, case):
    first = await upload_profile_picture(as_alice, small_png())
    assert first.status_code == 303
    before = await Actor.get(handle="alice")
    files_before = stored_files(settings)
    data, filename, content_type, message = BAD_UPLOADS[case]

    response = await upload_profile_picture(as_alice, data, filename, content_type, display_name="Changed")

    assert response.status_code == 400
    assert message in response.text
    assert 'id="avatar_file"' in response.text  # the form page, with the error on it
    after = await Actor.get(handle="alice")
    assert (after.avatar_url, after.name) == (before.avatar_url, "Alice")
    assert stored_files(settings) == files_before
    assert (await as_alice.get(before.avatar_url.removeprefix("https://fedi.test"))).status_code == 200


async def test_oversize_upload_is_413_with_nothing_stored(settings, as_alice):
    first = await upload_profile_picture(as_alice, small_png())
    assert first.status_code == 303
    before = (await Actor.get(handle="alice")).avatar_url
    files_before = stored_files(settings)
    oversize = small_png() + b"\0" * settings.media_max_bytes

    response = await upload_profile_picture(as_alice, oversize, "big.png", "image/png")

    assert response.status_code == 413
    assert "This picture is too large: at most 8 MB" in response.text
    assert 'id="avatar_file"' in response.text
    assert (await Actor.get(handle="alice")).avatar_url == before
    assert stored_files(settings) == files_before
    # The service refuses it as well when called directly.
    with pytest.raises(media.MediaRejected) as refused:
        await media.store_avatar(settings, oversize)
    assert refused.value.status == 413


async def test_upload_needs_the_csrf_token_and_a_login(client, settings, as_alice):
    response = await as_alice.post(
        "/settings/profile",
        data={"display_name": "Mallory was here", "csrf_token": "forged"},
        files={"avatar_file": ("me.png", small_png(), "image/png")},
    )
    assert response.status_code == 403
    assert stored_files(settings) == []
    anonymous = await client.post(
        "/settings/profile", files={"avatar_file": ("me.png", small_png(), "image/png")}
    )
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/login"
    assert stored_files(settings) == []
    assert (await Actor.get(handle="alice")).name == "Alice"


async def test_no_file_chosen_keeps_the_picture_and_saves_the_rest(settings, as_alice):
    assert (await upload_profile_picture(as_alice, small_png())).status_code == 303
    url = (await Actor.get(handle="alice")).avatar_url
    token = await token_from(as_alice, "/settings/profile")
    # What a browser sends for an untouched file input: a part with no file name and no bytes;
    # the address field carries the current picture's URL (the form shows it).
    response = await as_alice.post(
        "/settings/profile",
        data={"csrf_token": token, "display_name": "Alice L.", "avatar_url": url},
        files={"avatar_file": ("", b"", "application/octet-stream")},
    )
    assert response.status_code == 303
    actor = await Actor.get(handle="alice")
    assert (actor.name, actor.avatar_url) == ("Alice L.", url)
    assert len(stored_files(settings)) == 1


# --- old files --------------------------------------------------------------------------------------


async def test_replaced_picture_is_deleted_unless_another_actor_uses_it(settings, as_alice, browsers):
    await member(settings, "carol")
    as_carol = await browsers("carol")
    green = small_png((0, 128, 0))
    assert (await upload_profile_picture(as_alice, green)).status_code == 303
    assert (await upload_profile_picture(as_carol, green)).status_code == 303
    shared = (await Actor.get(handle="alice")).avatar_url
    assert (await Actor.get(handle="carol")).avatar_url == shared  # same bytes, one file
    assert len(stored_files(settings)) == 1

    assert (await upload_profile_picture(as_alice, small_png((200, 0, 0)))).status_code == 303
    assert len(stored_files(settings)) == 2  # carol still shows the green one
    served = await as_carol.get(shared.removeprefix("https://fedi.test"))
    assert served.status_code == 200

    # Carol empties the address field: no picture, and nobody uses the green file any more.
    token = await token_from(as_carol, "/settings/profile")
    response = await as_carol.post("/settings/profile", data={"csrf_token": token, "avatar_url": ""})
    assert response.status_code == 303
    assert (await Actor.get(handle="carol")).avatar_url is None
    alice_url = (await Actor.get(handle="alice")).avatar_url
    assert stored_files(settings) == [MEDIA_URL.fullmatch(alice_url).group(1) + ".webp"]
    assert (await as_carol.get(shared.removeprefix("https://fedi.test"))).status_code == 404


async def test_deleting_the_account_deletes_its_picture(settings, as_alice):
    assert (await upload_profile_picture(as_alice, small_png((10, 90, 10)))).status_code == 303
    url = (await Actor.get(handle="alice")).avatar_url
    assert len(stored_files(settings)) == 1
    token = await token_from(as_alice, "/settings/delete")
    gone = await as_alice.post("/settings/delete", data={"csrf_token": token, "password": PASSWORD})
    assert gone.status_code == 303
    assert (await Actor.get(handle="alice")).avatar_url is None
    assert stored_files(settings) == []
    assert (await as_alice.get(url.removeprefix("https://fedi.test"))).status_code == 404


# --- serving /media/ --------------------------------------------------------------------------------


TRAVERSALS = [
    "/media/../secret_key",
    "/media/..%2fsecret_key",
    "/media/%2e%2e%2fsecret_key",
    "/media/%2e%2e/secret_key",
    "/media/..%5csecret_key",
    "/media/....//secret_key",
    "/media/secret_key",
    "/media/notes.txt",
    "/media/.upload-x.tmp",
    "/media/%2fetc%2fpasswd",
    "/media/" + "a" * 64 + ".WEBP",
    "/media/" + "a" * 64 + ".webp%00.txt",
]


@pytest.mark.parametrize("path", TRAVERSALS)
async def test_media_route_refuses_path_traversal(app, settings, path):
    settings.media_root.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / "secret_key").write_text("TOP-SECRET-KEY")
    (settings.media_root / "notes.txt").write_text("TOP-SECRET-NOTES")
    (settings.media_root / ".upload-x.tmp").write_text("TOP-SECRET-PARTIAL")
    (settings.media_root / ("a" * 64 + ".WEBP")).write_text("TOP-SECRET-UPPER")

    # Sent raw, without the client normalising dot segments or encodings.
    raw = path.encode()
    decoded = httpx.URL(path).path
    status, body = await _raw_get(app, decoded, raw)

    assert status == 404, (path, status)
    assert b"TOP-SECRET" not in body


async def _raw_get(app, path: str, raw_path: bytes) -> tuple[int, bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": path,
        "raw_path": raw_path,
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"fedi.test")],
        "client": ("127.0.0.1", 5000),
        "server": ("fedi.test", 443),
        "state": {},
    }
    sent = False
    messages: list[dict] = []

    async def receive():
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        messages.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return status, body


async def test_unknown_media_name_is_404(client, settings):
    response = await client.get("/media/" + "0" * 64 + ".webp")
    assert response.status_code == 404
    for name in ("../secret_key", "/etc/passwd", "a" * 64 + ".webp/..", "A" * 64 + ".webp"):
        assert media.path_of(settings, name) is None
    assert media.path_of(settings, "a" * 64 + ".webp") == settings.media_root / ("a" * 64 + ".webp")


# --- groups -----------------------------------------------------------------------------------------


@pytest.fixture
async def hikers(settings, alice):
    return await create_group(settings, "hikers", alice, GroupInput(name="Hikers"))


async def edit_group(http, data: bytes, filename="g.png", content_type="image/png", **fields):
    token = await token_from(http, "/g/hikers/edit")
    form = {"csrf_token": token, "name": "Hikers", "join_mode": "open", "visibility": "public"}
    return await http.post(
        "/g/hikers/edit",
        data={**form, "posting": "members", **fields},
        files={"avatar_file": (filename, data, content_type)},
    )


async def test_group_admin_uploads_the_group_picture(app, settings, as_alice, hikers, bob):
    page = await as_alice.get("/g/hikers/edit")
    assert 'enctype="multipart/form-data"' in page.text and 'type="file"' in page.text

    response = await edit_group(as_alice, sideways_photo_with_gps(), "g.jpg", "image/jpeg")

    assert response.status_code == 303, response.text
    group = await Actor.get(id=hikers.id)
    assert MEDIA_URL.fullmatch(group.avatar_url or "")
    document = (await as_alice.get("/g/hikers", headers={"Accept": AP})).json()
    assert document["icon"]["url"] == group.avatar_url
    assert document["icon"]["mediaType"] == "image/webp"
    served = await as_alice.get(group.avatar_url.removeprefix("https://fedi.test"))
    assert b"SecretCam" not in served.content and dict(Image.open(io.BytesIO(served.content)).getexif()) == {}
    assert f'src="{group.avatar_url}"' in (await as_alice.get("/g/hikers")).text


async def test_group_bad_uploads_store_nothing(settings, as_alice, browsers, hikers):
    assert (await edit_group(as_alice, small_png())).status_code == 303
    before = (await Actor.get(id=hikers.id)).avatar_url
    files = stored_files(settings)

    for data, status in ((SVG, 400), (png_header_only(60_000, 60_000), 400), (b"\0" * (9 << 20), 413)):
        response = await edit_group(as_alice, data, name="Renamed")
        assert response.status_code == status
        assert 'id="avatar_file"' in response.text
        assert (await Actor.get(id=hikers.id)).avatar_url == before
        assert stored_files(settings) == files

    # A good picture with another field refused: the stored file is removed again.
    refused = await edit_group(as_alice, small_png((1, 2, 3)), name="")
    assert refused.status_code == 400 and "A group needs a name." in refused.text
    assert stored_files(settings) == files
    # Members who are not admins cannot change it.
    await member(settings, "carol")
    as_carol = await browsers("carol")
    token = await token_from(as_carol, "/settings/profile")
    response = await as_carol.post(
        "/g/hikers/edit",
        data={"csrf_token": token, "name": "Mine now"},
        files={"avatar_file": ("x.png", small_png((9, 9, 9)), "image/png")},
    )
    assert response.status_code == 403
    assert stored_files(settings) == files


def test_group_form_keeps_our_own_picture_on_an_http_dev_instance():
    own = "http://127.0.0.1:8000/media/" + "b" * 64 + ".webp"
    assert actor_values(GroupInput(name="Hikers", avatar_url=own))["avatar_url"] == own
    for other in ("http://evil.example/a.png", "http://x/media/" + "b" * 64 + ".webp/../x", "javascript:1"):
        with pytest.raises(ServiceError, match="https://"):
            actor_values(GroupInput(name="Hikers", avatar_url=other))


# --- pages ------------------------------------------------------------------------------------------


async def test_profile_form_offers_a_file_input(as_alice):
    page = await as_alice.get("/settings/profile")
    assert 'enctype="multipart/form-data"' in page.text
    assert 'name="avatar_file" type="file" accept="image/jpeg,image/png,image/gif,image/webp"' in page.text
    assert "at most 8 MB" in page.text


def test_settings_read_the_media_variables(tmp_path):
    from fediverse_net.config import ConfigError, Settings

    env = {"FEDINET_DATA_DIR": str(tmp_path), "FEDINET_SECRET_KEY": "k"}
    assert Settings.from_environ(env).media_root == tmp_path / "media"
    custom = Settings.from_environ({**env, "FEDINET_MEDIA_DIR": "/srv/m", "FEDINET_MEDIA_MAX_BYTES": "2048"})
    assert (custom.media_root, custom.media_max_bytes) == (Path("/srv/m"), 2048)
    with pytest.raises(ConfigError, match="MEDIA_MAX_BYTES"):
        Settings.from_environ({**env, "FEDINET_MEDIA_MAX_BYTES": "0"})
