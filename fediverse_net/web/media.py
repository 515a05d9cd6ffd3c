"""Uploaded pictures on the web: serving `/media/{name}`, and reading forms that carry one.

`/media/{name}` only serves names `services.media` could have made (64 hex digits + `.webp`):
any other name, with dots, slashes or encodings, is a 404 before the file system is touched.
Names are content hashes, so responses are cacheable for a year (`immutable`). A reverse proxy
may serve the directory itself instead (deploy/nginx.conf.example).

Forms with a file input are `multipart/form-data`. `read_upload_form` applies the same CSRF
check and field limits as `forms.read_form`, with a larger body cap: the picture limit
(`FEDINET_MEDIA_MAX_BYTES`) plus the ordinary form limit. Urlencoded posts (no file) still go
through `forms.read_form` unchanged.
"""

from __future__ import annotations

from typing import Final

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response

from fediverse_net.services import media
from fediverse_net.web.forms import (
    CSRF_FIELD,
    MAX_FORM_BYTES,
    FormRejected,
    capped_body,
    csrf_ok,
    parse_form,
    read_form,
)
from fediverse_net.web.wellknown import deps_of

CACHE_FOREVER: Final = "public, max-age=31536000, immutable"


async def serve(request: Request) -> Response:
    """GET `/media/{name}`: one stored picture, or 404."""
    settings = deps_of(request).settings
    path = media.path_of(settings, str(request.path_params.get("name", "")))
    if path is None or not path.is_file():
        return PlainTextResponse("not found", status_code=404, headers={"Cache-Control": "no-store"})
    headers = {"Cache-Control": CACHE_FOREVER, "X-Content-Type-Options": "nosniff"}
    return FileResponse(path, media_type=media.CONTENT_TYPE, headers=headers)


async def read_upload_form(
    request: Request, file_field: str, *, max_field: int = 10_000
) -> tuple[FormData, bytes | None]:
    """The posted form and the bytes of its one file in `file_field` (None when none was chosen).

    MediaRejected (413) when the picture is over the limit — raised before the CSRF check, as
    nothing is saved either way; FormRejected as `read_form` otherwise (403 for a bad CSRF token,
    400 for a field too long or an unexpected file).
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "multipart/form-data":
        return await read_form(request, max_field=max_field), None
    settings = deps_of(request).settings
    limit = settings.media_max_bytes + MAX_FORM_BYTES
    body = await capped_body(request, limit, media.too_large(settings))
    form = await parse_form(request, body, max_files=1)
    if not csrf_ok(request, form.get(CSRF_FIELD)):
        raise FormRejected(403, "This form expired, please try again.")
    upload: bytes | None = None
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            if name != file_field:
                raise FormRejected(400, "Files cannot be sent with this field.")
            data = await value.read()
            await value.close()
            # A file input left empty still sends a part, with no name and no bytes.
            upload = data if data or value.filename else None
        elif len(value) > max_field:
            raise FormRejected(400, f"The field “{name[:40]}” is too long: at most {max_field} characters.")
    if upload is not None and len(upload) > settings.media_max_bytes:
        raise media.too_large(settings)
    return form, upload
