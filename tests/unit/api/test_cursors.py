import base64
import json

import pytest

from api.cursors import CursorCodec, fingerprint
from api.errors import ApiError

FP = fingerprint("orders", [("status", "delivered")])


def test_round_trip():
    # Given a codec / When a key is encoded and decoded with the same fingerprint
    codec = CursorCodec(b"secret")
    cursor = codec.encode(FP, [42])
    # Then the key comes back
    assert codec.decode(cursor, FP) == [42]


def test_cursor_for_other_filters_or_route_is_refused():
    codec = CursorCodec(b"secret")
    cursor = codec.encode(FP, [42])
    for other in (fingerprint("orders", [("status", "broken")]), fingerprint("clients", [])):
        with pytest.raises(ApiError) as err:
            codec.decode(cursor, other)
        assert (err.value.status, err.value.code) == (400, "invalid_cursor")


def test_forged_cursor_is_refused():
    # Given a cursor whose payload is edited (a client trying to jump to another key)
    codec = CursorCodec(b"secret")
    _body, mac = codec.encode(FP, [42]).split(".")
    forged_payload = json.dumps({"f": FP, "k": [1]}, separators=(",", ":")).encode()
    forged = base64.urlsafe_b64encode(forged_payload).rstrip(b"=").decode() + "." + mac
    # When decoded / Then 400 invalid_cursor
    with pytest.raises(ApiError):
        codec.decode(forged, FP)


def test_cursor_signed_with_another_secret_is_refused():
    cursor = CursorCodec(b"other").encode(FP, [42])
    with pytest.raises(ApiError):
        CursorCodec(b"secret").decode(cursor, FP)


@pytest.mark.parametrize("raw", ["", "x", "a.b.c", "!!!.###", "e30.AAAA", "a" * 600 + ".b"])
def test_garbage_is_refused(raw):
    with pytest.raises(ApiError):
        CursorCodec(b"secret").decode(raw, FP)


def test_other_spellings_of_an_issued_cursor_are_refused():
    # Given an issued cursor
    codec = CursorCodec(b"secret")
    cursor = codec.encode(FP, [42])
    body, mac = cursor.split(".")
    # When it is re-spelled: padding added, or unused low bits of a last base64 char changed
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

    def sibling(text):
        # the same bytes with different trailing bits, when the length leaves bits unused
        i = alphabet.index(text[-1])
        for j in range(64):
            alt = text[:-1] + alphabet[j]
            if j != i and base64.urlsafe_b64decode(alt + "=" * (-len(alt) % 4)) == (
                base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            ):
                return alt
        return None

    variants = [cursor + "==", body + "==." + mac, body + "." + mac + "=="]
    variants += [v for v in (sibling(mac) and body + "." + sibling(mac),) if v]
    variants += [v for v in (sibling(body) and sibling(body) + "." + mac,) if v]
    assert len(variants) >= 4
    # Then each is refused as not issued by the server
    for variant in variants:
        with pytest.raises(ApiError) as err:
            codec.decode(variant, FP)
        assert (err.value.status, err.value.code) == (400, "invalid_cursor")
    # And the issued spelling still works
    assert codec.decode(cursor, FP) == [42]


def test_the_cursor_parameter_takes_what_the_codec_and_the_openapi_schema_take():
    # Given the cursor parameter of a route (the OpenAPI document says maxLength 512)
    from api.cursors import MAX_CURSOR_LENGTH
    from api.routes import Param

    param = Param("cursor", "cursor", "where the next page starts")
    assert param.schema()["maxLength"] == MAX_CURSOR_LENGTH
    # When a cursor between 200 and that length comes (a key of long text: an issued one)
    codec = CursorCodec(b"secret")
    cursor = codec.encode(FP, ["x" * 230, 7])
    assert 200 < len(cursor) <= MAX_CURSOR_LENGTH
    # Then the parameter passes it to the codec, which reads it back (it was refused as
    # "at most 200 characters", though the schema allowed 512)
    assert codec.decode(param.parse(cursor), FP) == ["x" * 230, 7]
