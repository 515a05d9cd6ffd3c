"""Actor and WebFinger documents: the media type of pictures follows their address."""

from __future__ import annotations

import pytest

from fediverse_net.activitypub.documents import image_media_type, webfinger_document


@pytest.mark.parametrize(
    ("url", "media"),
    [
        ("https://fedi.test/media/" + "a" * 64 + ".webp", "image/webp"),
        ("https://cdn.example/x.JPG?size=400", "image/jpeg"),
        ("https://cdn.example/x.gif", "image/gif"),
        ("https://cdn.example/avatar", "image/png"),
    ],
)
def test_image_media_type_from_the_extension(url: str, media: str) -> None:
    assert image_media_type(url) == media


def test_webfinger_avatar_link_names_the_real_type() -> None:
    avatar = "https://fedi.test/media/" + "b" * 64 + ".webp"
    jrd = webfinger_document(
        subject="acct:alice@fedi.test",
        actor_id="https://fedi.test/users/alice",
        profile_url="https://fedi.test/@alice",
        origin="https://fedi.test",
        actor_type="Person",
        avatar_url=avatar,
    )
    (link,) = [link for link in jrd["links"] if link["rel"] == "http://webfinger.net/rel/avatar"]
    assert link == {"rel": "http://webfinger.net/rel/avatar", "type": "image/webp", "href": avatar}
