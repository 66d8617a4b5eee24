"""auto=format's Accept negotiation: AVIF over WebP over the fallback, explicit types only."""

from __future__ import annotations

import pytest

from renderer.negotiate import MAX_ACCEPT_CHARS, accepted_media_types, best_format

BOTH = frozenset({"avif", "webp", "jpg", "png"})
CHROME = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
SAFARI_15 = "image/webp,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5"
OLD_IE = "image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5"


@pytest.mark.parametrize(
    "accept,expected",
    [
        (CHROME, "avif"),  # a current browser: the best format
        (SAFARI_15, "webp"),  # WebP but no AVIF
        (OLD_IE, None),  # neither: the fallback (fm, or the source's format)
        ("*/*", None),  # a wildcard says nothing about AVIF support
        ("image/*", None),
        ("", None),
        (None, None),
        ("image/webp;q=0.1, image/avif;q=0.9", "avif"),  # imgix's order, not the client's weights
        ("IMAGE/AVIF", "avif"),  # media types are case-insensitive
        ("image/avif;q=0, image/webp", "webp"),  # q=0 refuses
        ("image/avif ; q=0.0 , image/webp ; q=1", "webp"),
        ("image/avif;q=oops", "avif"),  # an unreadable weight is ignored
        ("text/html, image/webp;level=1;q=0.5", "webp"),
    ],
)
def test_best_format(accept: str | None, expected: str | None) -> None:
    assert best_format(accept, BOTH) == expected


def test_a_format_the_installed_pillow_cannot_write_is_never_offered() -> None:
    assert best_format(CHROME, frozenset({"webp", "jpg"})) == "webp"
    assert best_format(CHROME, frozenset({"jpg"})) is None


def test_lossless_skips_avif_which_has_no_lossless_mode() -> None:
    assert best_format(CHROME, BOTH, lossless=True) == "webp"
    assert best_format("image/avif", BOTH, lossless=True) is None


def test_only_the_first_part_of_a_huge_header_is_read() -> None:
    huge = "x/y," * MAX_ACCEPT_CHARS + "image/avif"
    assert "image/avif" not in accepted_media_types(huge)
    assert accepted_media_types("image/webp, image/*, */*;q=0.1") == {"image/webp"}
