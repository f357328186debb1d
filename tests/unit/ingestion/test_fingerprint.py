"""The fingerprint pass: SHA-256, size and whole-file faults, with chunks cut anywhere."""

from __future__ import annotations

import hashlib
import random
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
        # a lead byte whose continuation never comes, its chunk ending after it
        (b"abc\xc3defgh", 3),
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


def one_shot_fault(data: bytes) -> str | None:
    """The fault a decoder of the whole file at once finds: the reference."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.reason == "unexpected end of data":
            return "not valid UTF-8: the file ends inside a multi-byte character"
        return f"not valid UTF-8: bad byte at offset {exc.start}"
    return None


@pytest.mark.parametrize("seed", range(40))
def test_chunked_check_finds_the_fault_a_whole_file_decode_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    # Given text of 1-4-byte characters with, in most files, a few bytes broken
    rng = random.Random(seed)
    chars = "aZ,\n" + "\u00e9\u00df\u20ac\u4e2d\U0001f37a"
    data = bytearray("".join(rng.choice(chars) for _ in range(rng.randrange(1, 400))).encode())
    broken = [0x80, 0xBF, 0xC0, 0xC3, 0xE2, 0xF0, 0xF5, 0xFF]
    for _ in range(rng.choice([0, 0, 1, 2])):
        data[rng.randrange(len(data))] = rng.choice(broken)
    if rng.random() < 0.25:
        data = data[: rng.randrange(1, len(data) + 1)]  # cut anywhere, maybe inside a character
    path = tmp_path / "f.csv"
    path.write_bytes(bytes(data))
    # When it is checked in chunks of any size
    monkeypatch.setattr(land, "READ_BYTES", rng.choice([1, 2, 3, 5, 7, 64]))
    fp = land.fingerprint(str(path))
    # Then the fault is the one a decode of the whole file reports, at the same offset
    assert fp.fault == one_shot_fault(bytes(data))
