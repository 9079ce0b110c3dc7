"""What makes two requests the same request, which answers are kept, which keys are valid."""

from __future__ import annotations

import pytest

from gateway.domain.idempotency import InvalidIdempotencyKey, checked_key, fingerprint, keeps


def test_the_same_request_has_the_same_fingerprint_and_any_difference_another() -> None:
    base = fingerprint("POST", "/v1/api-keys", "application/json", b'{"a": 1}')
    assert base == fingerprint("POST", "/v1/api-keys", "application/json", b'{"a": 1}')
    others = [
        fingerprint("POST", "/v1/api-keys?x=1", "application/json", b'{"a": 1}'),
        fingerprint("POST", "/v1/api-keys", "application/x-ndjson", b'{"a": 1}'),
        fingerprint("POST", "/v1/api-keys", "application/json", b'{"a": 2}'),
        fingerprint("PUT", "/v1/api-keys", "application/json", b'{"a": 1}'),
        # Parts are length-prefixed: moving bytes from one part to the next is another request.
        fingerprint("POST", "/v1/api-keysa", "pplication/json", b'{"a": 1}'),
    ]
    assert base not in others and len(set(others)) == len(others)


@pytest.mark.parametrize(
    ("status", "kept"),
    [
        (200, True),
        (201, True),
        (202, True),
        (404, True),
        (422, True),
        (429, False),
        (500, False),
        (503, False),
    ],
)
def test_only_final_answers_are_kept(status: int, kept: bool) -> None:
    assert keeps(status) is kept


@pytest.mark.parametrize("value", ["", "x" * 256, "naïve", "tab\there"])
def test_keys_are_1_to_255_visible_ascii_characters(value: str) -> None:
    with pytest.raises(InvalidIdempotencyKey):
        checked_key(value)
    assert checked_key("3f1c9a4e-0b7d-4c55-9a51-2d0f6f0e8b11") == "3f1c9a4e-0b7d-4c55-9a51-2d0f6f0e8b11"
