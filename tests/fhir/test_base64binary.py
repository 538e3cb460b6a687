"""base64Binary decoding and encoding (pybase64) agree with the standard library's strict
base64 on every input: the same bytes, the same refusals.

https://hl7.org/fhir/R4/datatypes.html#base64Binary
"""

from __future__ import annotations

import base64
import binascii

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maison.fhir import base64binary


def _standard(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _ours(text: str) -> bytes | None:
    try:
        return base64binary.decode(text)
    except ValueError:
        return None


@given(st.binary(max_size=3000))
def test_round_trip_matches_the_standard_library(data: bytes) -> None:
    text = base64binary.encode(data)
    assert text == base64.b64encode(data).decode("ascii")
    assert base64binary.decode(text) == data
    assert base64binary.is_valid(text)


@given(st.text(alphabet="ABCDEFabcdef0123+/=\n -_é@", max_size=40))
def test_decoding_accepts_and_refuses_as_the_standard_library(text: str) -> None:
    assert _ours(text) == _standard(text)


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("QUJDRA==", True),
        ("", True),
        ("QUJD\nRA==", True),  # wrapped over lines, as a JSON value may be
        ("QUJDRA", False),  # padding missing
        ("QUJDRA===", False),
        ("QUJDRA==QQ==", False),  # data after the padding
        ("QUJD-A==", False),  # the URL-safe alphabet is not base64Binary
        ("%%%2@()()", False),
    ],
)
def test_is_valid(text: str, valid: bool) -> None:
    assert base64binary.is_valid(text) is valid
