"""``ValueSet/$validate-code`` and ``CodeSystem/$validate-code``: whether a code (a Coding, a
CodeableConcept) is in a value set or a code system, with its display checked.

A code is in a value set whatever URL its system is given under (NOS TRE_A04 or
http://loinc.org: one system). A display that is not the concept's is a warning (``message``),
the result stays true; an unknown code, a code outside the value set, an abstract code when
``abstract`` is false make it false, with a ``message`` that says why.

https://hl7.org/fhir/R4/valueset-operation-validate-code.html
https://hl7.org/fhir/R4/codesystem-operation-validate-code.html
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from maison.fhir.definitions import Definitions
from maison.terminology.compose import Composer, Entry, ExpansionCache, value_set_label
from maison.terminology.errors import (
    TerminologyError,
    bad_input,
    missing,
    unknown_code_system,
)
from maison.terminology.packages import PackageSource
from maison.terminology.source import Concept, TerminologySource, canonical_system


@dataclass(frozen=True, slots=True)
class Coding:
    """A code to check (https://hl7.org/fhir/R4/datatypes.html#Coding)."""

    system: str | None
    code: str | None
    version: str | None = None
    display: str | None = None

    @classmethod
    def of(cls, coding: dict[str, Any]) -> Coding:
        """From a FHIR Coding element."""
        return cls(
            _text(coding.get("system")),
            _text(coding.get("code")),
            _text(coding.get("version")),
            _text(coding.get("display")),
        )

    def label(self) -> str:
        """``system#code`` for messages."""
        return f"{self.system}#{self.code}" if self.system else f"#{self.code}"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def codings(
    operation: str,
    *,
    code: str | None = None,
    system: str | None = None,
    version: str | None = None,
    display: str | None = None,
    coding: dict[str, Any] | None = None,
    codeable_concept: dict[str, Any] | None = None,
    system_needed: bool = True,
) -> list[Coding]:
    """The codes an operation was given, as code+system, a Coding or a CodeableConcept: exactly
    one of them (https://hl7.org/fhir/R4/valueset-operation-validate-code.html)."""
    given = [x for x in (code, coding, codeable_concept) if x is not None]
    if not given:
        raise missing(
            operation, "give the code to check: code (with system), coding or codeableConcept"
        )
    if len(given) > 1:
        raise bad_input(operation, "give only one of code, coding and codeableConcept")
    if code is not None:
        if system is None and system_needed:
            raise missing(operation, f"the code '{code}' needs its system (parameter 'system')")
        return [Coding(system, code, version, display)]
    if coding is not None:
        c = Coding.of(coding)
        if c.code is None:
            raise missing(operation, "the coding has no code")
        return [c]
    assert codeable_concept is not None
    found = [Coding.of(c) for c in codeable_concept.get("coding") or () if isinstance(c, dict)]
    if not found:
        raise missing(operation, "the codeableConcept has no coding")
    return found


def _displays(entry_display: str | None, concept: Concept | None) -> list[str]:
    out = [d for d in (entry_display, concept.display if concept else None) if d]
    if concept is not None:
        out.extend(d.value for d in concept.designations)
    return out


def _display_ok(given: str, known: list[str]) -> bool:
    wanted = " ".join(given.split()).casefold()
    return any(" ".join(k.split()).casefold() == wanted for k in known)


@dataclass
class _Verdict:
    result: bool
    messages: list[str]
    display: str | None = None


def _parameters(verdicts: list[_Verdict]) -> dict[str, Any]:
    """One answer for several codings (a CodeableConcept is valid when one of them is)."""
    good = next((v for v in verdicts if v.result), None)
    chosen = [good] if good is not None else verdicts
    messages = [m for v in chosen for m in v.messages]
    out: list[dict[str, Any]] = [{"name": "result", "valueBoolean": good is not None}]
    if messages:
        out.append({"name": "message", "valueString": "; ".join(messages)})
    display = good.display if good is not None else None
    if display:
        out.append({"name": "display", "valueString": display})
    return {"resourceType": "Parameters", "parameter": out}


def _held_version(source: TerminologySource, c: Coding) -> str | None:
    """A message when the coding names a version of its system that is not held."""
    if c.system is None or c.version is None:
        return None
    if source.system(c.system, c.version) is not None:
        return None
    held = source.system(c.system)
    if held is None:
        return None
    return (
        f"Version {c.version} of the code system {c.system} is not known to this server "
        f"(it holds version {held.version})"
    )


def _check_display(
    c: Coding, code_display: str | None, concept: Concept | None, messages: list[str]
) -> None:
    if c.display is None:
        return
    known = _displays(code_display, concept)
    if known and not _display_ok(c.display, known):
        expected = code_display or (concept.display if concept else None)
        messages.append(
            f"The display '{c.display}' is not a display of the code {c.label()}"
            + (f": expected '{expected}'" if expected else "")
        )


def validate_in_value_set(
    source: TerminologySource,
    *,
    url: str | None = None,
    value_set: dict[str, Any] | None = None,
    value_set_version: str | None = None,
    code: str | None = None,
    system: str | None = None,
    system_version: str | None = None,
    display: str | None = None,
    coding: dict[str, Any] | None = None,
    codeable_concept: dict[str, Any] | None = None,
    abstract: bool = True,
    cache: ExpansionCache | None = None,
) -> dict[str, Any]:
    """Whether the code is in the value set, as ``Parameters`` (result, message, display)
    (https://hl7.org/fhir/R4/valueset-operation-validate-code.html)."""
    op = "validate-code"
    composer = Composer(source, cache)
    if value_set is not None:
        if value_set.get("resourceType") != "ValueSet":
            raise bad_input(op, "valueSet must be a ValueSet resource")
        vs, key = value_set, composer.key(value_set, None, None)
    elif url:
        bare, _, pinned = url.partition("|")
        version = value_set_version or pinned or None
        vs = composer.resolve(bare, version)
        key = composer.key(vs, bare, version)
    else:
        raise missing(op, "give the value set: url (or valueSet, or ValueSet/[id])")
    label = value_set_label(vs)
    given = codings(
        op,
        code=code,
        system=system,
        version=system_version,
        display=display,
        coding=coding,
        codeable_concept=codeable_concept,
    )
    verdicts = []
    for c in given:
        verdicts.append(_in_value_set(composer, vs, key, label, c, abstract))
    return _parameters(verdicts)


def _in_value_set(
    composer: Composer, vs: dict[str, Any], key: Any, label: str, c: Coding, abstract: bool
) -> _Verdict:
    source = composer.source
    if c.code is None:
        return _Verdict(False, ["A coding without a code is not valid"])
    if c.system is None:
        return _Verdict(False, [f"The code '{c.code}' has no system"])
    wrong_version = _held_version(source, c)
    if wrong_version:
        return _Verdict(False, [wrong_version])
    try:
        entry = composer.contains(vs, key, c.system, c.code)
    except TerminologyError as exc:
        return _Verdict(False, [exc.message])
    if entry is None:
        return _Verdict(False, [_not_in(source, c, label)])
    return _accepted(source, c, entry, abstract)


def _not_in(source: TerminologySource, c: Coding, label: str) -> str:
    assert c.system is not None and c.code is not None
    info = source.system(c.system, c.version)
    if info is not None and source.concept(c.system, c.code, c.version) is None:
        return (
            f"Unknown code '{c.code}' in the code system {c.system}"
            + (f" version {info.version}" if info.version else "")
            + f"; it is not in the value set {label}"
        )
    return f"The code {c.label()} is not in the value set {label}"


def _accepted(source: TerminologySource, c: Coding, entry: Entry, abstract: bool) -> _Verdict:
    messages: list[str] = []
    if not abstract and entry.abstract:
        return _Verdict(
            False, [f"The code {c.label()} is abstract: it cannot be used where a code is chosen"]
        )
    concept: Concept | None = None
    if c.display is not None and not _display_ok(
        c.display, [d for d in (entry.display, *(d.value for d in entry.designations)) if d]
    ):
        assert c.system is not None and c.code is not None
        concept = source.concept(c.system, c.code, c.version)
        _check_display(c, entry.display, concept, messages)
    if entry.inactive:
        messages.append(f"The code {c.label()} is inactive")
    return _Verdict(True, messages, entry.display or (concept.display if concept else None))


def validate_in_code_system(
    source: TerminologySource,
    *,
    url: str | None = None,
    code_system: dict[str, Any] | None = None,
    version: str | None = None,
    code: str | None = None,
    display: str | None = None,
    coding: dict[str, Any] | None = None,
    codeable_concept: dict[str, Any] | None = None,
    abstract: bool = True,
) -> dict[str, Any]:
    """Whether the code is in the code system, as ``Parameters`` (result, message, display)
    (https://hl7.org/fhir/R4/codesystem-operation-validate-code.html)."""
    op = "validate-code"
    if code_system is not None:
        if code_system.get("resourceType") != "CodeSystem" or not code_system.get("url"):
            raise bad_input(op, "codeSystem must be a CodeSystem resource with a url")
        source = PackageSource(Definitions(code_systems={str(code_system["url"]): code_system}))
        url = str(code_system["url"])
    given = codings(
        op,
        code=code,
        system=url,
        version=version,
        display=display,
        coding=coding,
        codeable_concept=codeable_concept,
        system_needed=False,
    )
    if url is None:
        url = next((c.system for c in given if c.system), None)
        if url is None:
            raise missing(op, "give the code system: url, or a coding with its system")
    if source.system(url, version) is None:
        held = source.system(url) if version else None
        raise unknown_code_system(url, version, held.version if held else None)
    verdicts = []
    for c in given:
        if c.system is not None and canonical_system(c.system) != canonical_system(url):
            verdicts.append(
                _Verdict(False, [f"The coding {c.label()} is not of the code system {url}"])
            )
            continue
        verdicts.append(_in_code_system(source, url, version or c.version, c, abstract))
    return _parameters(verdicts)


def _in_code_system(
    source: TerminologySource, url: str, version: str | None, c: Coding, abstract: bool
) -> _Verdict:
    info = source.system(url, version)
    if info is None:
        held = source.system(url)
        return _Verdict(
            False, [unknown_code_system(url, version, held.version if held else None).message]
        )
    assert c.code is not None
    concept = source.concept(url, c.code, version)
    if concept is None:
        message = f"Unknown code '{c.code}' in the code system {url}" + (
            f" version {info.version}" if info.version else ""
        )
        if info.content != "complete":
            message += f" (this server holds only a {info.content} of it)"
        return _Verdict(False, [message])
    if not abstract and any(
        p == "notSelectable" and v in (True, "true") for p, v in concept.properties
    ):
        return _Verdict(
            False, [f"The code {url}#{c.code} is abstract: it cannot be chosen as a code"]
        )
    messages: list[str] = []
    _check_display(Coding(url, c.code, c.version, c.display), None, concept, messages)
    if concept.inactive:
        messages.append(f"The code {url}#{c.code} is inactive")
    return _Verdict(True, messages, concept.display)


__all__ = ["Coding", "codings", "validate_in_code_system", "validate_in_value_set"]
