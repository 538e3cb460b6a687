"""Checks of primitive datatype values, driven by the regexes of the R4 type definitions.

https://hl7.org/fhir/R4/datatypes.html#primitive
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any
from xml.etree import ElementTree

from maison.fhir import base64binary
from maison.fhir.definitions import Definitions

# https://hl7.org/fhir/R4/datatypes.html#string: no C0 controls but tab, CR, LF
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")

REGEX_EXT = "http://hl7.org/fhir/StructureDefinition/regex"
FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
XHTML_NS = "{http://www.w3.org/1999/xhtml}"

INT_RANGES: dict[str, tuple[int, int]] = {
    "integer": (-(2**31), 2**31 - 1),
    "positiveInt": (1, 2**31 - 1),
    "unsignedInt": (0, 2**31 - 1),
}
# spec text of the JSON representation: https://hl7.org/fhir/R4/json.html#primitive
JSON_KIND: dict[str, str] = {
    "boolean": "boolean",
    "integer": "integer",
    "positiveInt": "integer",
    "unsignedInt": "integer",
    "decimal": "number",
}
# string/markdown with some non-whitespace: https://hl7.org/fhir/R4/datatypes.html#string
_STRING_FAST = r"[ \r\n\t\S]*\S[ \r\n\t\S]*"


def is_primitive(code: str) -> bool:
    """True for a primitive type code (``string``, ``date``…): https://hl7.org/fhir/R4/datatypes.html."""
    return bool(code) and code[0].islower()


def fhir_type_code(type_ref: dict[str, Any]) -> str:
    """The FHIR type of an ElementDefinition.type (``System.String`` ids mapped back to FHIR)."""
    code: str = type_ref.get("code", "")
    if code.startswith("http://hl7.org/fhirpath/System."):
        for ext in type_ref.get("extension", ()):
            if ext.get("url") == FHIR_TYPE_EXT:
                return str(ext.get("valueUrl") or ext.get("valueUri") or "string")
        return "string"
    return code


def _base64_ok(value: str) -> bool:
    return base64binary.is_valid(value)


@functools.lru_cache(maxsize=256)
def parse_xhtml(value: str) -> ElementTree.Element | str:
    """Parse a narrative ``div``; the parse error message when it is not well-formed XML."""
    try:
        return ElementTree.fromstring(value)
    except ElementTree.ParseError as exc:
        return str(exc)


def _xhtml_problem(value: str) -> str | None:
    root = parse_xhtml(value)
    if isinstance(root, str):
        return f"is not well-formed XHTML ({root})"
    if root.tag != XHTML_NS + "div":
        return "must be a <div> element in the XHTML namespace (http://www.w3.org/1999/xhtml)"
    return None


# https://hl7.org/fhir/R4/narrative.html#xhtml: basic formatting elements and attributes only
HTML_ELEMENTS = frozenset(
    [
        "p",
        "br",
        "div",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "a",
        "span",
        "b",
        "em",
        "i",
        "strong",
        "small",
        "big",
        "tt",
        "dfn",
        "q",
        "var",
        "abbr",
        "acronym",
        "cite",
        "blockquote",
        "hr",
        "address",
        "bdo",
        "kbd",
        "sub",
        "sup",
        "ul",
        "ol",
        "li",
        "dl",
        "dt",
        "dd",
        "pre",
        "table",
        "caption",
        "colgroup",
        "col",
        "thead",
        "tr",
        "tfoot",
        "tbody",
        "th",
        "td",
        "code",
        "samp",
        "img",
        "map",
        "area",
    ]
)
HTML_ATTRIBUTES = frozenset(
    [
        "title",
        "style",
        "class",
        "id",
        "lang",
        "dir",
        "accesskey",
        "tabindex",
        "span",
        "width",
        "align",
        "valign",
        "char",
        "charoff",
        "abbr",
        "axis",
        "headers",
        "scope",
        "rowspan",
        "colspan",
        "href",
        "name",
        "src",
        "border",
        "cellpadding",
        "cellspacing",
        "frame",
        "rules",
        "summary",
        "alt",
        "height",
        "shape",
        "coords",
        "start",
        "type",
        "compact",
        "value",
        "reversed",
        "nowrap",
        "bgcolor",
    ]
)


def html_checks(value: Any) -> bool:
    """The FHIRPath ``htmlChecks()`` of a narrative: basic HTML only, some non-whitespace text.

    https://hl7.org/fhir/R4/narrative.html#xhtml
    """
    if not isinstance(value, str):
        return False
    root = parse_xhtml(value)
    if isinstance(root, str):
        return False
    for el in root.iter():
        tag = el.tag if isinstance(el.tag, str) else ""
        if not tag.startswith(XHTML_NS) or tag[len(XHTML_NS) :] not in HTML_ELEMENTS:
            return False
        for attr, attr_value in el.attrib.items():
            name = attr.rsplit("}", 1)[-1]
            if attr.startswith("{http://www.w3.org/XML/1998/namespace}"):
                continue
            if name not in HTML_ATTRIBUTES or "javascript:" in attr_value.lower():
                return False
    text = "".join(root.itertext()).strip()
    return bool(text) or any(
        isinstance(el.tag, str) and el.tag.endswith("}img") for el in root.iter()
    )


class PrimitiveChecker:
    """Validates JSON primitive values per type, with the regexes read from the definitions.

    https://hl7.org/fhir/R4/datatypes.html#primitive
    """

    def __init__(self, defs: Definitions) -> None:
        self._regex: dict[str, re.Pattern[str] | None] = {}
        self._max_length: dict[str, int] = {}
        self._checks: dict[str, Callable[[Any], str | None]] = {}
        for name, sd in defs.types.items():
            if sd.get("kind") != "primitive-type":
                continue
            for el in sd.get("snapshot", {}).get("element", ()):
                if el.get("path") != f"{name}.value":
                    continue
                pattern = None
                for t in el.get("type", ()):
                    for ext in t.get("extension", ()):
                        if ext.get("url") == REGEX_EXT:
                            pattern = ext.get("valueString")
                self._regex[name] = re.compile(pattern) if pattern else None
                if "maxLength" in el:
                    self._max_length[name] = int(el["maxLength"])
        slow = {"base64Binary", "xhtml", "string", "markdown", *JSON_KIND}
        self._fast: dict[str, re.Pattern[str]] = {
            k: rx for k, rx in self._regex.items() if rx is not None and k not in slow
        }
        self._fast["string"] = self._fast["markdown"] = re.compile(_STRING_FAST)

    def known(self, code: str) -> bool:
        """True when ``code`` is a primitive type of the definitions."""
        return code in self._regex

    def check(self, code: str, value: Any) -> str | None:
        """Return a problem description for ``value`` as a ``code`` primitive, or None if valid."""
        if type(value) is str:
            rx = self._fast.get(code)
            if (
                rx is not None
                and rx.fullmatch(value) is not None
                and len(value) < 4096
                and _CONTROL.search(value) is None
            ):
                return None  # the common case: a short, well-formed string
        return self._check(code, value)

    def _check(self, code: str, value: Any) -> str | None:
        kind = JSON_KIND.get(code, "string")
        if kind == "boolean":
            return None if isinstance(value, bool) else "must be a JSON boolean (true/false)"
        if kind == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer():
                    return "must be a JSON integer without a decimal part"
                return "must be a JSON integer"
            low, high = INT_RANGES[code]
            if not low <= value <= high:
                return f"{value} is out of range for {code} ({low}..{high})"
            return None
        if kind == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return "must be a JSON number"
            return None
        if not isinstance(value, str):
            return f"must be a JSON string, not {type(value).__name__}"
        bad = _CONTROL.search(value)
        if bad is not None:
            return (
                f"contains the control character U+{ord(bad.group()):04X}; FHIR strings may only "
                "use tab, carriage return and line feed below U+0020"
            )
        if value == "":
            return "must not be empty (omit the element instead)"
        max_len = self._max_length.get(code)
        if max_len is not None and len(value) > max_len:
            return f"is longer than the permitted maximum length of {max_len} characters"
        if code == "base64Binary":
            return None if _base64_ok(value) else "is not valid base64"
        if code == "xhtml":
            return _xhtml_problem(value)
        if code in ("string", "markdown") and value.strip() == "":
            return "must contain non-whitespace content"
        rx = self._regex.get(code)
        if rx is not None and rx.fullmatch(value) is None:
            return f"{value!r} is not a valid {code}"
        return None
