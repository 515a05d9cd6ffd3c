"""Uploaded pictures (avatars of members and groups): check, clean, store, forget.

An upload is untrusted bytes. Neither the file name nor the Content-Type the browser sent is
looked at: Pillow identifies the bytes, restricted to the four formats we accept (JPEG, PNG,
GIF, WebP), so no other decoder ever runs on them. Before any pixel is decoded the header's
dimensions are checked (decompression bombs); a truncated or corrupt image fails to decode and
is refused. What we keep is never the uploaded file: the pixels are turned upright (EXIF
orientation), converted to sRGB, scaled to fit `AVATAR_SIZE` and written into a brand-new image,
so EXIF (GPS included), XMP, ICC profiles, comments and any bytes smuggled into a polyglot are
gone. That image is encoded as WebP:

- WebP carries transparency and photos in one format at about a third of PNG's size, so one
  encoder serves every avatar and the file every follower's server fetches stays small;
- every fediverse server we federate with accepts it for avatars (Mastodon, Misskey, Lemmy's
  pict-rs, GoToSocial; pict-rs and Misskey even convert to it), and all current browsers show it.

Animated GIF/WebP avatars keep their first frame only (one decode, no frame-count bombs).

Files are named by the SHA-256 of their bytes, so a name never changes meaning: they are served
with a year-long immutable cache, two actors uploading the same picture share one file, and a file
is deleted only once no actor refers to it any more (`forget_unused`).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import re
import tempfile
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from tortoise.expressions import Q

from fediverse_net.config import Settings
from fediverse_net.db.models import Actor
from fediverse_net.services.errors import ServiceError

if TYPE_CHECKING:
    from PIL import Image

ACCEPTED_FORMATS: Final = ("JPEG", "PNG", "GIF", "WEBP")
# Pillow names a JPEG with a second image inside (MPF: HDR gain maps of recent phones, stereo
# cameras) "MPO". The JPEG plugin opens it; it is a JPEG whose first image we keep.
_JPEG_KINDS: Final = ("JPEG", "MPO")
AVATAR_SIZE: Final = (400, 400)  # Mastodon's avatar size; the aspect ratio is kept
# Decoded pixels cost 4 bytes each: 33 MP (an 8K frame, Mastodon's limit) is ~130 MB of RAM.
MAX_PIXELS: Final = 7680 * 4320
# JPEG is decoded already scaled down by libjpeg (`draft`, up to 1/8 per side), so far larger
# photos (108 MP phone cameras) cost no more memory than a small PNG.
# (Kept under Pillow's own 89 MP warning threshold.)
MAX_JPEG_PIXELS: Final = 2 * MAX_PIXELS
MAX_SIDE: Final = 20_000
WEBP_QUALITY: Final = 85
MEDIA_PATH: Final = "/media/"
NAME_RE: Final = re.compile(r"[0-9a-f]{64}\.webp")
CONTENT_TYPE: Final = "image/webp"
# At most two pictures are decoded at once, whatever the number of requests: bounds the memory
# a burst of large uploads can take. Their own threads, so waiting uploads never hold the default
# pool that password hashing and key generation use. Created on first use.
DECODE_THREADS: Final = 2
_executor: ThreadPoolExecutor | None = None
_executor_lock: Final = threading.Lock()

NOT_AN_IMAGE: Final = "This file is not a picture we can use. Please upload a JPEG, PNG, GIF or WebP image."
BROKEN: Final = "This picture could not be read: the file is damaged or incomplete."


class MediaRejected(ServiceError):
    """An upload we refuse; `status` is the HTTP status for the form page (400 or 413)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def too_large(settings: Settings) -> MediaRejected:
    limit = settings.media_max_bytes
    size = f"{limit // (1024 * 1024)} MB" if limit >= 1024 * 1024 else f"{limit // 1024} KB"
    return MediaRejected(f"This picture is too large: at most {size}. Nothing was saved.", 413)


@dataclass(frozen=True, slots=True)
class Picture:
    """A cleaned picture ready to store: WebP bytes and their content-hash file name."""

    data: bytes
    name: str
    width: int
    height: int


def _open(data: bytes) -> Image.Image:
    # Pillow is imported on the first upload, not at start: it adds several MiB to every
    # process's memory (benchmark B10), and most processes never decode a picture.
    from PIL import Image, UnidentifiedImageError

    try:
        # `formats` limits identification to these four plugins: an SVG, HTML or any other
        # format Pillow could read is refused here, whatever its name says.
        image = Image.open(io.BytesIO(data), formats=list(ACCEPTED_FORMATS))
    except UnidentifiedImageError:
        raise MediaRejected(NOT_AN_IMAGE) from None
    except Image.DecompressionBombError:  # Pillow's own limit, far above ours
        raise MediaRejected(f"This picture is too big. Please use one of at most {_megapixels()}.") from None
    except (OSError, ValueError, SyntaxError):
        raise MediaRejected(BROKEN) from None
    if image.format not in (*ACCEPTED_FORMATS, *_JPEG_KINDS):
        raise MediaRejected(NOT_AN_IMAGE)
    return image


def _megapixels(limit: int = MAX_PIXELS) -> str:
    return f"{limit // 1_000_000} megapixels"


def _check_dimensions(image: Image.Image) -> None:
    """Refuse a decompression bomb from its header, before a pixel is decoded."""
    width, height = image.size
    limit = MAX_JPEG_PIXELS if image.format in _JPEG_KINDS else MAX_PIXELS
    if width < 1 or height < 1 or width > MAX_SIDE or height > MAX_SIDE or width * height > limit:
        raise MediaRejected(
            f"This picture is too big: {width}×{height} pixels. "
            f"Please use one of at most {_megapixels(limit)}, each side under {MAX_SIDE} pixels."
        )


def _to_srgb(image: Image.Image, icc: object) -> Image.Image:
    """Colours of a wide-gamut photo (Display P3 phones) converted, so dropping the profile
    does not dull them; a profile littlecms cannot use is simply dropped."""
    if not isinstance(icc, bytes) or not icc or image.mode not in ("RGB", "RGBA"):
        return image
    try:
        from PIL import ImageCms  # littlecms; Pillow's wheels include it
    except ImportError:
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        srgb = ImageCms.createProfile("sRGB")
        converted = ImageCms.profileToProfile(image, source, srgb, outputMode=image.mode)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return image
    return converted if converted is not None else image


def _clean(data: bytes, max_size: tuple[int, int]) -> Picture:
    from PIL import Image, ImageOps

    image = _open(data)
    _check_dimensions(image)
    icc = image.info.get("icc_profile")
    try:
        if image.format in _JPEG_KINDS:
            # Decode at the smallest 1/2, 1/4 or 1/8 scale still at least twice the target.
            image.draft("RGB", (max_size[0] * 2, max_size[1] * 2))
        image.load()  # raises on truncated or corrupt data (LOAD_TRUNCATED_IMAGES stays off)
        image = ImageOps.exif_transpose(image)  # upright, before the EXIF goes away
        has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
        image = _to_srgb(image, icc)
        image.thumbnail(max_size, Image.Resampling.LANCZOS)
        # A brand-new image holding only the pixels: no info, no EXIF, XMP, ICC or comments.
        clean = Image.new(image.mode, image.size)
        clean.paste(image)
        out = io.BytesIO()
        clean.save(out, format="WEBP", quality=WEBP_QUALITY, method=4)
    except MediaRejected:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
        raise MediaRejected(BROKEN) from None
    encoded = out.getvalue()
    name = hashlib.sha256(encoded).hexdigest() + ".webp"
    return Picture(data=encoded, name=name, width=clean.width, height=clean.height)


def clean_picture(data: bytes, max_size: tuple[int, int] = AVATAR_SIZE) -> Picture:
    """Check `data` and return it as a clean WebP fitting `max_size`; MediaRejected when refused.

    Blocking and CPU-bound: call it from a thread (`store_avatar` does).
    """
    if not data:
        raise MediaRejected("The picture file is empty.")
    return _clean(data, max_size)


def _decoder() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=DECODE_THREADS, thread_name_prefix="media")
        return _executor


def media_url(settings: Settings, name: str) -> str:
    """The absolute URL other servers fetch the file from (the actor's `icon`)."""
    return f"{settings.origin}{MEDIA_PATH}{name}"


def name_of(settings: Settings, url: str | None) -> str | None:
    """The file name when `url` is one of our own media files, else None."""
    prefix = f"{settings.origin}{MEDIA_PATH}"
    if not url or not url.startswith(prefix):
        return None
    name = url[len(prefix) :]
    return name if NAME_RE.fullmatch(name) else None


def path_of(settings: Settings, name: str) -> Path | None:
    """The file behind a served name; None for any name we could not have made (no traversal)."""
    if not NAME_RE.fullmatch(name):
        return None
    return settings.media_root / name


def _write(directory: Path, picture: Picture) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / picture.name
    if target.exists():
        return  # same bytes already stored (names are content hashes)
    # Written under a temporary name and renamed: a reader never sees half a file.
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".upload-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(picture.data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _process_and_write(settings: Settings, data: bytes) -> str:
    picture = clean_picture(data)
    _write(settings.media_root, picture)
    return picture.name


async def store_avatar(settings: Settings, data: bytes) -> str:
    """Clean and store an uploaded avatar; returns its absolute URL for `Actor.avatar_url`.

    MediaRejected (400, or 413 over `settings.media_max_bytes`) and nothing written when refused.
    Callers save the URL inside `replacing_avatar`, which cleans up whatever happens.
    """
    if len(data) > settings.media_max_bytes:
        raise too_large(settings)
    loop = asyncio.get_running_loop()
    name = await loop.run_in_executor(_decoder(), _process_and_write, settings, data)
    return media_url(settings, name)


async def forget_unused(settings: Settings, *urls: str | None) -> list[str]:
    """Delete those of our media files among `urls` that no actor refers to any more.

    Called after an avatar change was saved or refused, with the old and the new URL: whichever
    is still in use stays. Returns the names deleted. (A file shared by content hash with an
    upload of the very same picture that is not committed yet could go in that instant; its
    owner then shows no picture until the next upload. That race needs two identical uploads
    within milliseconds and costs no data.)
    """
    deleted: list[str] = []
    for url in dict.fromkeys(urls):
        name = name_of(settings, url)
        if name is None or url is None:
            continue
        if await Actor.filter(Q(avatar_url=url) | Q(header_url=url)).exists():
            continue
        path = path_of(settings, name)
        if path is not None and path.exists():
            path.unlink(missing_ok=True)
            deleted.append(name)
    return deleted


@asynccontextmanager
async def replacing_avatar(
    settings: Settings, previous: str | None, upload: bytes | None
) -> AsyncIterator[str | None]:
    """Store `upload` (when given) and yield its URL for the caller to save; None without one.

    Afterwards, saved or refused, `forget_unused(previous, new)`: a replaced file goes once no
    actor uses it, and a file stored for a save that then failed goes too. The previous picture
    stays whenever the save did not happen. MediaRejected from the upload leaves nothing behind.
    """
    uploaded = await store_avatar(settings, upload) if upload is not None else None
    try:
        yield uploaded
    finally:
        await forget_unused(settings, previous, uploaded)
