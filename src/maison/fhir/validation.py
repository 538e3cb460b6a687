"""Resource validation against the base StructureDefinitions and profiles, driven by snapshots.

https://hl7.org/fhir/R4/validation.html
"""

from __future__ import annotations

import re
from typing import Any

from maison.fhir.definitions import Definitions
from maison.fhir.errors import Issue
from maison.fhir.validation_invariants import (
    Invariant,
    InvariantCompiler,
    holds,
    needs_evaluation,
)
from maison.fhir.validation_model import MISSING, RESOURCE_TYPES, CompiledDefinition, ElementRule
from maison.fhir.validation_primitives import PrimitiveChecker, is_primitive
from maison.fhir.validation_slicing import matches_pattern, prepare, slice_of
from maison.fhir.validation_terminology import BindingTerminology, ValueSetExpander

_RELATIVE_REF = re.compile(
    r"(?P<type>[A-Za-z]+)/[A-Za-z0-9\-.]{1,64}(/_history/[A-Za-z0-9\-.]{1,64})?"
)
_ABSOLUTE_REF = re.compile(
    r"[a-z][a-z0-9+.\-]*://\S+?/(?P<type>[A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}"
    r"(/_history/[A-Za-z0-9\-.]{1,64})?"
)
_ABSOLUTE_URI = re.compile(r"[a-zA-Z][a-zA-Z0-9+.\-]*:\S+")
_UUID = re.compile(
    r"urn:uuid:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_OID = re.compile(r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+")


def _error(out: list[Issue], code: str, message: str, loc: str) -> None:
    out.append(Issue("error", code, message, (loc,)))


# HL7 tooling extensions inside ElementDefinitions (structuredefinition-fhir-type, regex…) are
# placed by the snapshot generators where R4 core itself puts them (ElementDefinition.type),
# whatever context their R4 definitions declare: a warning there, an error anywhere else.
_CORE_EXTENSIONS = "http://hl7.org/fhir/StructureDefinition/"


class Validator:
    """Validates resources (dicts) against the definitions: structure, types, codes, invariants.

    https://hl7.org/fhir/R4/validation.html
    """

    def __init__(
        self,
        defs: Definitions,
        invariants: bool = True,
        terminology: BindingTerminology | None = None,
    ) -> None:
        """``terminology`` answers binding checks (default: the value sets of ``defs``)."""
        self.defs = defs
        self.check_invariants = invariants
        self.primitives = PrimitiveChecker(defs)
        self.invariant_compiler = InvariantCompiler()
        self.terminology: BindingTerminology = terminology or ValueSetExpander(defs)
        self._compiled: dict[str, CompiledDefinition | None] = {}
        self._by_type: dict[str, CompiledDefinition | None] = {}
        element = self.type_definition("Element")
        self._element_root = element.root if element else None

    @property
    def skipped_invariants(self) -> dict[str, str]:
        """Invariant keys not evaluated (unsupported FHIRPath functions…) with the reason."""
        return dict(self.invariant_compiler.skipped)

    def definition(self, url: str) -> CompiledDefinition | None:
        """The compiled StructureDefinition for a canonical URL (compiled once, cached)."""
        url = url.split("|", 1)[0]
        if url not in self._compiled:
            sd = self.defs.structure_definitions.get(url)
            compiled = None
            if sd is not None and sd.get("snapshot"):
                compiled = CompiledDefinition(sd, self.defs, self.invariant_compiler)
            self._compiled[url] = compiled
        return self._compiled[url]

    def type_definition(self, type_name: str) -> CompiledDefinition | None:
        """The compiled base definition of a resource type or datatype."""
        if type_name not in self._by_type:
            sd = self.defs.types.get(type_name)
            self._by_type[type_name] = self.definition(sd["url"]) if sd else None
        return self._by_type[type_name]

    def validate(self, resource: Any, profiles: list[str] | None = None) -> list[Issue]:
        """Validate one resource against its base type and the given profiles.

        https://hl7.org/fhir/R4/validation.html#structure
        """
        out: list[Issue] = []
        if not isinstance(resource, dict):
            _error(out, "structure", "A resource must be a JSON object", "")
            return out
        rt = resource.get("resourceType")
        base = self._resource_definition(rt)
        if base is None:
            _error(out, "structure", f"Unknown resourceType {rt!r}", str(rt or ""))
            return out
        assert isinstance(rt, str)  # known resource type
        walk = _Walk(self, out, resource)
        walk.resource_root(resource, base.root, rt)
        for url in profiles or ():
            profile = self.definition(url)
            if profile is None:
                out.append(
                    Issue("warning", "not-found", f"Unknown profile {url}, not checked", (rt,))
                )
            elif profile.type != rt:
                _error(out, "invalid", f"Profile {url} is for {profile.type}, not {rt}", rt)
            else:
                walk.resource_root(resource, profile.root, rt)
        seen: set[Issue] = set()
        unique = []
        for issue in out:
            if issue not in seen:
                seen.add(issue)
                unique.append(issue)
        return unique

    def _ancestors(self, code: str) -> list[str]:
        names = []
        sd = self.defs.types.get(code)
        while sd is not None:
            names.append(str(sd.get("type")))
            base = str(sd.get("baseDefinition", ""))
            sd = self.defs.structure_definitions.get(base) if base else None
        return names

    def context_allows(self, extension: dict[str, Any], path: str, code: str) -> bool:
        """Whether an extension may be used on an element (StructureDefinition.context).

        https://hl7.org/fhir/R4/defining-extensions.html#context
        """
        contexts = extension.get("context") or ()
        if not path or not contexts:
            return True
        names = {path, path.replace("[x]", ""), code, *self._ancestors(code)}
        if "." not in path:
            names.update(("Resource", "DomainResource"))
        for c in contexts:
            expression = str(c.get("expression", ""))
            if c.get("type") != "element" or not re.fullmatch(r"[A-Za-z0-9.\[\]]+", expression):
                return True
            if expression in names or expression == "Element":
                return True
        return False

    def _resource_definition(self, rt: Any) -> CompiledDefinition | None:
        if not isinstance(rt, str) or not self.defs.is_resource_type(rt):
            return None
        return self.type_definition(rt)

    def node_for(
        self, rule: ElementRule, code: str
    ) -> tuple[ElementRule | None, tuple[Invariant, ...]]:
        """The rule describing an item's children (for type ``code``) and its invariants."""
        cached = rule.resolved.get(code)
        if cached is not None:
            return cached
        type_def = (
            None if code in ("BackboneElement", "Element", "") else self.type_definition(code)
        )
        invariants = list(rule.invariants)
        node: ElementRule | None
        if rule.children:
            node = rule
            if type_def is not None and rule.keys is None:
                merged = dict(type_def.root.children)
                merged.update(rule.children)
                rule.children = merged
        else:
            node = type_def.root if type_def is not None else None
        if type_def is not None:
            keys = {i.key for i in invariants}
            invariants.extend(i for i in type_def.root.invariants if i.key not in keys)
        result = (node, tuple(invariants))
        rule.resolved[code] = result
        return result


def _local_refs(value: Any, out: set[str]) -> None:
    if isinstance(value, dict):
        for v in value.values():
            _local_refs(v, out)
    elif isinstance(value, list):
        for v in value:
            _local_refs(v, out)
    elif isinstance(value, str) and value[:1] == "#":
        out.add(value)


def _keys(node: ElementRule) -> dict[str, tuple[ElementRule, str]]:
    keys = node.keys
    if keys is not None:
        return keys
    keys = {}
    required = []
    for name, child in node.children.items():
        if child.choice:
            for t in child.types:
                keys[name + t[0].upper() + t[1:]] = (child, t)
        else:
            keys[name] = (child, child.types[0] if child.types else "")
        if child.min > 0 or any(s.min > 0 for s in child.slices):
            required.append(child)
    node.required = tuple(required)
    node.keys = keys
    return keys


class _Walk:
    """One validation run: walks the JSON alongside the compiled rules, collecting issues."""

    def __init__(self, validator: Validator, out: list[Issue], root: dict[str, Any]) -> None:
        self.v = validator
        self.out = out
        self.variables: dict[str, Any] = {"resource": root, "rootResource": root}
        # the element whose extensions are being walked: (rule path, type code), for contexts
        self.container: tuple[str, str] = ("", "")

    # -- resources -------------------------------------------------------------------------
    def resource_root(self, resource: dict[str, Any], node: ElementRule, loc: str) -> None:
        saved = self.container
        self.container = (node.path, node.path)
        self.obj(resource, node, loc, True)
        self.container = saved
        if "contained" in resource and node.path in self.v.defs.resource_types:
            self.contained_references(resource, loc)
        self.invariants(node.invariants, resource, None, loc)

    def contained_references(self, resource: dict[str, Any], loc: str) -> None:
        """dom-3: every contained resource is referenced from elsewhere in the resource."""
        contained = resource.get("contained")
        if not isinstance(contained, list) or not contained:
            return
        refs: set[str] = set()
        _local_refs(resource, refs)
        for i, c in enumerate(contained):
            if not isinstance(c, dict) or not isinstance(c.get("id"), str):
                continue
            if "#" + c["id"] in refs:
                continue
            own: set[str] = set()
            _local_refs(c, own)
            if "#" not in own:
                at = f"{loc}.contained[{i}]"
                _error(
                    self.out,
                    "invariant",
                    f"{at}: constraint dom-3 failed: the contained resource {c['id']!r} is not "
                    "referenced from the rest of the resource or does not reference it",
                    at,
                )

    def nested_resource(self, item: Any, rule: ElementRule, loc: str) -> None:
        if not isinstance(item, dict):
            _error(self.out, "structure", f"{loc}: a resource must be a JSON object", loc)
            return
        rt = item.get("resourceType")
        definition = self.v._resource_definition(rt)
        if definition is None:
            _error(self.out, "structure", f"{loc}: unknown resourceType {rt!r}", loc)
            return
        contained = rule.path.endswith(".contained")
        if contained:
            if "id" not in item:
                _error(self.out, "required", f"{loc}: a contained resource must have an id", loc)
            if "contained" in item:
                _error(
                    self.out, "structure", f"{loc}: a contained resource cannot contain others", loc
                )
        saved = self.variables
        root = saved["rootResource"] if contained else item
        self.variables = {"resource": item, "rootResource": root}
        try:
            self.resource_root(item, definition.root, loc)
        finally:
            self.variables = saved

    # -- objects ---------------------------------------------------------------------------
    def obj(self, obj: dict[str, Any], node: ElementRule, loc: str, is_resource: bool) -> None:
        out = self.out
        keys = _keys(node)
        choices: dict[str, str] | None = None
        for key, value in obj.items():
            entry = keys.get(key)
            if entry is None:
                if key[:1] == "_":
                    self.companion(key, value, keys, obj, loc)
                elif not (is_resource and key == "resourceType"):
                    self.unknown(key, node, loc)
                continue
            rule, code = entry
            if rule.choice:
                if choices is None:
                    choices = {}
                other = choices.get(rule.name)
                if other is not None:
                    _error(
                        out,
                        "structure",
                        f"{loc}: only one of {rule.name}[x] is allowed, found {other} and {key}",
                        f"{loc}.{key}",
                    )
                choices[rule.name] = key
            self.element(value, rule, code, f"{loc}.{key}", obj.get("_" + key))
        for rule in node.required:
            if rule.choice:
                present = choices is not None and rule.name in choices
                if not present:
                    present = any(k.startswith("_" + rule.name) for k in obj)
            else:
                present = rule.name in obj or "_" + rule.name in obj
            if present:
                continue
            if rule.min > 0:
                label = f"{rule.name}[x]" if rule.choice else rule.name
                _error(
                    out,
                    "required",
                    f"{loc}.{label}: minimum cardinality {rule.min}, found 0",
                    f"{loc}.{label}",
                )
            for s in rule.slices:
                if s.min > 0:
                    _error(
                        out,
                        "required",
                        f"{loc}.{rule.name}: slice '{s.slice_name}' requires at least {s.min}, "
                        "found 0",
                        f"{loc}.{rule.name}",
                    )

    def unknown(self, key: str, node: ElementRule, loc: str) -> None:
        for name, child in node.children.items():
            if child.choice and key.startswith(name) and key[len(name) : len(name) + 1].isupper():
                allowed = ", ".join(child.types)
                _error(
                    self.out,
                    "structure",
                    f"{loc}.{key}: type {key[len(name) :]} is not allowed for {name}[x] "
                    f"(allowed: {allowed})",
                    f"{loc}.{key}",
                )
                return
        _error(self.out, "structure", f"Unknown element '{key}' in {loc}", f"{loc}.{key}")

    def companion(
        self,
        key: str,
        value: Any,
        keys: dict[str, tuple[ElementRule, str]],
        obj: dict[str, Any],
        loc: str,
    ) -> None:
        entry = keys.get(key[1:])
        if entry is None or not is_primitive(entry[1]):
            _error(self.out, "structure", f"Unknown element '{key}' in {loc}", f"{loc}.{key}")
            return
        rule = entry[0]
        where = f"{loc}.{key}"
        element = self.v._element_root
        if rule.array:
            if not isinstance(value, list):
                _error(self.out, "structure", f"{where}: must be a JSON array", where)
                return
            items = value
            main = obj.get(key[1:])
            if isinstance(main, list) and len(main) != len(items):
                _error(
                    self.out,
                    "structure",
                    f"{where}: must have the same number of items as {key[1:]}",
                    where,
                )
        else:
            items = [value]
        for i, item in enumerate(items):
            at = f"{where}[{i}]" if rule.array else where
            if item is None and rule.array:
                continue
            if not isinstance(item, dict):
                _error(self.out, "structure", f"{at}: must be a JSON object", at)
            elif element is not None:
                saved = self.container
                self.container = (rule.path, entry[1])
                self.obj(item, element, at, False)
                self.container = saved

    # -- elements --------------------------------------------------------------------------
    def element(self, value: Any, rule: ElementRule, code: str, loc: str, extra: Any) -> None:
        out = self.out
        if rule.array:
            if not isinstance(value, list):
                _error(
                    out,
                    "structure",
                    f"{loc}: must be a JSON array, not a single value "
                    f"(maximum cardinality {'*' if rule.max < 0 else rule.max})",
                    loc,
                )
                self.item(value, rule, code, loc)
                return
            if not value:
                _error(out, "structure", f"{loc}: an array must not be empty (omit it)", loc)
                return
            if 0 <= rule.max < len(value):
                _error(
                    out,
                    "structure",
                    f"{loc}: maximum cardinality {rule.max}, found {len(value)}",
                    loc,
                )
            if len(value) < rule.min:
                _error(
                    out,
                    "required",
                    f"{loc}: minimum cardinality {rule.min}, found {len(value)}",
                    loc,
                )
            for i, item in enumerate(value):
                if item is None:
                    if not (isinstance(extra, list) and i < len(extra) and extra[i] is not None):
                        _error(out, "structure", f"{loc}[{i}]: null is not allowed here", loc)
                    continue
                self.item(item, rule, code, f"{loc}[{i}]")
            if rule.slices and rule.slicing is not None:
                self.slices(value, rule, code, loc)
        else:
            if isinstance(value, list):
                _error(
                    out,
                    "structure",
                    f"{loc}: must be a single value, not a JSON array (maximum cardinality 1)",
                    loc,
                )
                return
            if rule.max == 0:
                _error(out, "structure", f"{loc}: maximum cardinality 0, found 1", loc)
            if value is None and extra is not None:
                return
            self.item(value, rule, code, loc)
            if rule.slices and rule.slicing is not None:
                self.slices([value], rule, code, loc)

    def item(self, item: Any, rule: ElementRule, code: str, loc: str) -> None:
        if is_primitive(code):
            problem = self.v.primitives.check(code, item)
            if problem is not None:
                _error(self.out, "value", f"{loc}: {problem}", loc)
                return
            if rule.binding is not None and code == "code":
                self.code_binding(item, rule, loc)
            if rule.invariants:
                self.invariants(rule.invariants, item, code, loc)
        elif code in RESOURCE_TYPES:
            self.nested_resource(item, rule, loc)
            return
        else:
            if not isinstance(item, dict):
                _error(
                    self.out,
                    "structure",
                    f"{loc}: must be a JSON object ({code or 'element'})",
                    loc,
                )
                return
            node, invariants = self.v.node_for(rule, code)
            if node is not None:
                saved = self.container
                self.container = (rule.path, code)
                self.obj(item, node, loc, False)
                self.container = saved
            if code == "Reference":
                self.reference(item, rule, loc)
            elif code == "Extension":
                self.extension(item, rule, loc)
            elif rule.binding is not None and code in ("Coding", "CodeableConcept"):
                self.coding_binding(item, rule, code, loc)
            for url in rule.type_profiles.get(code, ()) if code != "Extension" else ():
                profile = self.v.definition(url)
                if profile is not None:
                    saved = self.container
                    self.container = (rule.path, code)  # still inside this element's type
                    self.obj(item, profile.root, loc, False)
                    self.container = saved
                    self.invariants(profile.root.invariants, item, code, loc)
            if invariants:
                backbone = code in ("BackboneElement", "Element", "")
                type_name = (rule.content_ref or rule.path) if backbone else code
                self.invariants(invariants, item, type_name, loc)
        if rule.fixed is not MISSING and item != rule.fixed:
            _error(self.out, "value", f"{loc}: value must be exactly {rule.fixed!r}", loc)
        if rule.pattern is not MISSING and not matches_pattern(item, rule.pattern):
            _error(self.out, "value", f"{loc}: value must match the pattern {rule.pattern!r}", loc)

    def invariants(
        self, invariants: tuple[Invariant, ...], item: Any, type_name: str | None, loc: str
    ) -> None:
        if not self.v.check_invariants:
            return
        for inv in invariants:
            if needs_evaluation(inv, item):
                ok = holds(inv, item, type_name, self.variables)
            else:
                ok = inv.empty_holds
            if not ok:
                self.out.append(
                    Issue(
                        inv.severity,
                        "invariant",
                        f"{loc}: constraint {inv.key} failed: {inv.human}",
                        (loc,),
                    )
                )

    # -- slicing ---------------------------------------------------------------------------
    def slices(self, items: list[Any], rule: ElementRule, code: str, loc: str) -> None:
        slicing = rule.slicing
        if slicing is None or not prepare(slicing, rule.slices):
            return
        counts = [0] * len(rule.slices)
        for i, item in enumerate(items):
            if item is None:
                continue
            at = f"{loc}[{i}]" if rule.array else loc
            index = slice_of(item, code, slicing, rule.slices)
            if index < 0:
                if slicing.rules == "closed":
                    _error(
                        self.out,
                        "structure",
                        f"{at}: does not match any slice of {rule.path} (slicing is closed)",
                        at,
                    )
                continue
            counts[index] += 1
            self.item(item, rule.slices[index], code, at)
        for s, count in zip(rule.slices, counts, strict=True):
            if count and count < s.min:
                _error(
                    self.out,
                    "required",
                    f"{loc}: slice '{s.slice_name}' requires at least {s.min}, found {count}",
                    loc,
                )
            if 0 <= s.max < count:
                _error(
                    self.out,
                    "structure",
                    f"{loc}: slice '{s.slice_name}' allows at most {s.max}, found {count}",
                    loc,
                )
        for s, count in zip(rule.slices, counts, strict=True):
            if not count and s.min > 0:
                _error(
                    self.out,
                    "required",
                    f"{loc}: slice '{s.slice_name}' requires at least {s.min}, found 0",
                    loc,
                )

    # -- datatypes with rules of their own -------------------------------------------------
    def reference(self, item: dict[str, Any], rule: ElementRule, loc: str) -> None:
        ref = item.get("reference")
        if not isinstance(ref, str) or not ref:
            return
        where = f"{loc}.reference"
        if ref[0] == "#":
            if len(ref) > 1:
                root = self.variables["rootResource"]
                ids = {c.get("id") for c in root.get("contained", ()) if isinstance(c, dict)}
                if ref[1:] not in ids:
                    _error(
                        self.out,
                        "invalid",
                        f"{where}: {ref!r} does not match the id of a contained resource",
                        where,
                    )
            return
        if ref.startswith("urn:"):
            if not (_UUID.fullmatch(ref) or _OID.fullmatch(ref)):
                message = f"{where}: {ref!r} is not a well-formed urn:uuid: or urn:oid: reference"
                self.out.append(Issue("warning", "value", message, (where,)))
            return
        m = _RELATIVE_REF.fullmatch(ref)
        if m is None:
            m = _ABSOLUTE_REF.fullmatch(ref)
            if m is None:
                if _ABSOLUTE_URI.fullmatch(ref) is None:
                    _error(
                        self.out,
                        "value",
                        f"{where}: {ref!r} is not a valid reference (Type/id, absolute URL, "
                        "#id or urn:uuid:)",
                        where,
                    )
                return
        rtype = m.group("type")
        if not self.v.defs.is_resource_type(rtype):
            _error(self.out, "value", f"{where}: {rtype!r} is not a resource type", where)
        elif rule.targets is not None and rtype not in rule.targets:
            allowed = ", ".join(sorted(rule.targets))
            _error(
                self.out,
                "value",
                f"{where}: a reference to {rtype} is not allowed here (allowed: {allowed})",
                where,
            )

    def extension(self, item: dict[str, Any], rule: ElementRule, loc: str) -> None:
        url = item.get("url")
        if not isinstance(url, str):
            return  # the missing url is reported by the cardinality check
        if rule.path != "Extension.extension" and _ABSOLUTE_URI.fullmatch(url) is None:
            _error(
                self.out, "value", f"{loc}.url: extension url must be absolute, not {url!r}", loc
            )
            return
        sd = self.v.defs.structure_definitions.get(url)
        if sd is None or sd.get("type") != "Extension":
            return
        if rule.path != "Extension.extension" and not self.v.context_allows(sd, *self.container):
            where = " or ".join(str(c.get("expression")) for c in sd.get("context", ()))
            message = (
                f"{loc}: extension {url} is not allowed on {self.container[0]} "
                f"(its context is {where})"
            )
            if url.startswith(_CORE_EXTENSIONS) and self.container[0].startswith(
                "ElementDefinition"
            ):
                self.out.append(Issue("warning", "business-rule", message, (loc,)))
            else:
                _error(self.out, "business-rule", message, loc)
        definition = self.v.definition(url)
        if definition is not None and definition.root is not rule:
            self.obj(item, definition.root, loc, False)
            self.invariants(definition.root.invariants, item, "Extension", loc)

    def code_binding(self, value: str, rule: ElementRule, loc: str) -> None:
        self.binding_verdict([(None, value)], rule, loc)

    def coding_binding(self, item: dict[str, Any], rule: ElementRule, code: str, loc: str) -> None:
        codings = item.get("coding") if code == "CodeableConcept" else [item]
        if not isinstance(codings, list):
            return
        pairs = [
            (c.get("system"), str(c["code"]))
            for c in codings
            if isinstance(c, dict) and "code" in c
        ]
        if code == "Coding":
            pairs = pairs[:1]
        if pairs:
            self.binding_verdict(pairs, rule, loc)

    def binding_verdict(
        self, pairs: list[tuple[str | None, str]], rule: ElementRule, loc: str
    ) -> None:
        """Whether one of the codes is in the bound value set: outside a required one is an
        error, outside an extensible or preferred one a warning; a required or extensible
        binding to a value set the server cannot expand is a warning naming it, never a
        silent pass (https://hl7.org/fhir/R4/terminologies.html#strength)."""
        assert rule.binding is not None
        vs = rule.binding.split("|", 1)[0]
        verdicts = [self.v.terminology.contains(rule.binding, s, c) for s, c in pairs]
        if any(v is True for v in verdicts):
            return
        strength = rule.strength or "required"
        if all(v is None for v in verdicts):
            if strength in ("required", "extensible"):
                self.out.append(
                    Issue(
                        "warning",
                        "not-supported",
                        f"{loc}: the {strength} value set {vs} is not loaded here, so "
                        "the code was not checked against it",
                        (loc,),
                    )
                )
            return
        shown = ", ".join(f"{s}#{c}" if s else repr(c) for s, c in pairs)
        message = f"{loc}: {shown} is not in the {strength} value set {vs}"
        if strength == "required":
            _error(self.out, "code-invalid", message, loc)
        else:
            self.out.append(Issue("warning", "code-invalid", message, (loc,)))
