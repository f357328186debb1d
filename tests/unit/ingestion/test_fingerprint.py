"""The fingerprint pass: SHA-256, size and whole-file faults, with chunks cut anywhere."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ingestion import fingerprint as land


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given chunks of 4 bytes, so characters and faults fall on chunk boundaries
    monkeypatch.setattr(land, "READ_BYTES", 4)


@pytest.mark.parametrize(
    "data",
    [
        b"abc\xc3\xa9defgh",  # 'é' split between the first two chunks, ASCII after it
        b"abcd\xe2\x82\xacefgh",  # '€' starts a chunk
        b"ab\xf0\x9f\x8d\xbaxyzw",  # a 4-byte character across two chunks
        b"plain ascii only, several chunks\n",
    ],
)
def test_valid_utf8_split_anywhere_has_no_fault(
    tmp_path: Path, small_chunks: None, data: bytes
) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(data)
    # When it is fingerprinted
    fp = land.fingerprint(str(path))
    # Then hash and size are those of the bytes, and there is no fault
    assert fp.sha256 == hashlib.sha256(data).hexdigest()
    assert fp.size == len(data)
    assert fp.fault is None


@pytest.mark.parametrize(
    ("data", "offset"),
    [
        # a lead byte whose continuation never comes: found at the next chunk's first byte
        (b"abc\xc3defgh", 4),
        (b"abcdefg\xffhijk", 7),
        (b"abcd\xa9efgh", 4),  # a continuation byte with no lead byte, at a chunk start
    ],
)
def test_invalid_utf8_is_found_even_when_ascii_chunks_follow(
    tmp_path: Path, small_chunks: None, data: bytes, offset: int
) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(data)
    fp = land.fingerprint(str(path))
    assert fp.fault == f"not valid UTF-8: bad byte at offset {offset}"
    assert fp.sha256 == hashlib.sha256(data).hexdigest()


def test_a_file_ending_inside_a_character_is_refused(tmp_path: Path, small_chunks: None) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b"abcdefg\xe2\x82")
    fp = land.fingerprint(str(path))
    assert fp.fault == "not valid UTF-8: the file ends inside a multi-byte character"
