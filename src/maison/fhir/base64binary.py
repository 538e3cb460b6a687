"""FHIR ``base64Binary``: strict decoding and encoding of document content, with the
SIMD-accelerated ``pybase64`` (about fifty times faster than the standard library on a megabyte,
where a fed document's base64 was a fifth of the server's CPU).

https://hl7.org/fhir/R4/datatypes.html#base64Binary
"""

from __future__ import annotations

import pybase64


def decode(text: str | bytes) -> bytes:
    """The bytes of a base64 text: the standard alphabet only, padded to a multiple of four,
    no whitespace; raises ``binascii.Error`` (a ``ValueError``) otherwise
    (https://hl7.org/fhir/R4/datatypes.html#base64Binary)."""
    return pybase64.b64decode(text, validate=True)


def encode(data: bytes) -> str:
    """The standard, padded base64 text of ``data`` (https://hl7.org/fhir/R4/datatypes.html#base64Binary)."""
    return pybase64.b64encode_as_string(data)


def is_valid(text: str) -> bool:
    """Whether a JSON ``base64Binary`` value decodes, whitespace (line wrapping) allowed
    (https://hl7.org/fhir/R4/datatypes.html#base64Binary)."""
    try:
        decode(text)
    except ValueError:
        return any(c.isspace() for c in text) and _is_valid_compact(text)
    return True


def _is_valid_compact(text: str) -> bool:
    try:
        decode("".join(text.split()))
    except ValueError:
        return False
    return True


__all__ = ["decode", "encode", "is_valid"]
