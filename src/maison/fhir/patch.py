"""The PATCH interaction's two JSON formats: JSON Patch (RFC 6902) and FHIRPath Patch.

https://hl7.org/fhir/R4/http.html#patch and https://hl7.org/fhir/R4/fhirpatch.html
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fhirpathpy
import jsonpatch
import orjson

from maison.fhir.definitions import Definitions
from maison.fhir.errors import Category, FhirError, invalid

JSON_PATCH = "application/json-patch+json"
FHIR_JSON = "application/fhir+json"

_JSON_OPS: dict[str, tuple[str, ...]] = {
    "add": ("value",),
    "remove": (),
    "replace": ("value",),
    "move": ("from",),
    "copy": ("from",),
    "test": ("value",),
}
_FHIR_OPS = ("add", "insert", "delete", "replace", "move")
_PARTS = ("type", "path", "name", "value", "index", "source", "destination")
_INT_KEYS = ("valueInteger", "valueUnsignedInt", "valuePositiveInt")
_SYSTEM = "http://hl7.org/fhirpath/System."
_ROOT = "$root"


def unprocessable(message: str) -> FhirError:
    """A 422 for a patch that cannot apply: https://hl7.org/fhir/R4/http.html#patch."""
    return FhirError(Category.UNPROCESSABLE, message)


# --- the interaction -------------------------------------------------------------------------


def apply_patch(
    resource: dict[str, Any],
    content_type: str,
    body: object,
    *,
    definitions: Definitions | None = None,
) -> dict[str, Any]:
    """Apply a PATCH body of either format: https://hl7.org/fhir/R4/http.html#patch."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == JSON_PATCH:
        result = apply_json_patch(resource, _parsed(body))
    elif media == FHIR_JSON:
        result = apply_fhirpath_patch(resource, _parsed(body), definitions=definitions)
    else:
        raise FhirError(
            Category.MEDIA_TYPE,
            f"PATCH bodies of type {content_type!r} are not supported: "
            f"use {JSON_PATCH} (JSON Patch) or {FHIR_JSON} (FHIRPath Patch Parameters)",
        )
    for member in ("resourceType", "id"):
        if result.get(member) != resource.get(member):
            raise unprocessable(f"A patch may not change the resource's {member}")
    return result


def _parsed(body: object) -> Any:
    if isinstance(body, bytes | bytearray | memoryview | str):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise invalid(f"The PATCH body is not valid JSON: {exc}") from exc
    return body


# --- JSON Patch ------------------------------------------------------------------------------


def apply_json_patch(resource: dict[str, Any], patch: object) -> dict[str, Any]:
    """Apply an RFC 6902 JSON Patch: https://hl7.org/fhir/R4/http.html#patch."""
    ops = _json_patch_ops(patch)
    try:
        compiled = [jsonpatch.JsonPatch([op]) for op in ops]
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise invalid(f"Invalid JSON Patch document: {_short(exc)}") from exc
    document: Any = copy.deepcopy(resource)
    for n, (op, one) in enumerate(zip(ops, compiled, strict=True)):
        what = f"JSON Patch operation {n} ({op['op']} {op['path']!r})"
        try:
            document = one.apply(document, in_place=True)
        except jsonpatch.JsonPatchTestFailed as exc:
            raise unprocessable(f"{what} failed: {_short(exc)}") from exc
        except jsonpatch.InvalidJsonPatch as exc:
            raise invalid(f"{what} is invalid: {_short(exc)}") from exc
        except jsonpatch.JsonPointerException as exc:
            raise unprocessable(f"{what} cannot be applied: a path does not exist") from exc
        except (
            jsonpatch.JsonPatchException,
            TypeError,
            KeyError,
            IndexError,
            ValueError,
            AttributeError,
            AssertionError,
        ) as exc:
            raise unprocessable(f"{what} cannot be applied: {_short(exc)}") from exc
    if not isinstance(document, dict):
        raise unprocessable("The patched document is not a JSON object")
    return document


def _short(exc: Exception, limit: int = 200) -> str:
    text = str(exc)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json_patch_ops(patch: object) -> list[dict[str, Any]]:
    if not isinstance(patch, list):
        raise invalid("A JSON Patch document must be an array of operations")
    for n, op in enumerate(patch):
        if not isinstance(op, dict):
            raise invalid(f"JSON Patch operation {n} is not an object")
        kind = op.get("op")
        if not isinstance(kind, str) or kind not in _JSON_OPS:
            raise invalid(
                f"JSON Patch operation {n} has an unknown op {kind!r}: expected one of "
                + ", ".join(_JSON_OPS)
            )
        for member in ("path", *_JSON_OPS[kind]):
            if member not in op:
                raise invalid(f"JSON Patch operation {n} ({kind}) has no {member!r} member")
        for member in ("path", "from"):
            if member in op and (member == "path" or kind in ("move", "copy")):
                _check_pointer(op[member], n, member)
    return patch


def _check_pointer(pointer: object, n: int, member: str) -> None:
    if not isinstance(pointer, str):
        raise invalid(f"JSON Patch operation {n}: {member!r} must be a string")
    try:
        jsonpatch.JsonPointer(pointer)
    except jsonpatch.JsonPointerException as exc:
        raise invalid(f"JSON Patch operation {n}: {member!r} is not a JSON Pointer: {exc}") from exc


# --- FHIRPath Patch: the operations ----------------------------------------------------------


@dataclass
class _Op:
    """One ``operation`` parameter of a FHIRPath Patch."""

    n: int
    type: str
    path: str
    name: str | None
    value: dict[str, Any] | None
    index: int | None
    source: int | None
    destination: int | None

    def where(self) -> str:
        return f"FHIRPath Patch operation {self.n} ({self.type} at {self.path!r})"


def apply_fhirpath_patch(
    resource: dict[str, Any],
    parameters: dict[str, Any],
    *,
    definitions: Definitions | None = None,
) -> dict[str, Any]:
    """Apply a FHIRPath Patch Parameters resource: https://hl7.org/fhir/R4/fhirpatch.html.

    With ``definitions``, whether a new element is a list comes from the R4
    StructureDefinitions and unknown element names are refused; without, it is inferred.
    """
    ops = _fhir_ops(parameters)
    if not isinstance(resource, dict):
        raise invalid("The resource to patch is not a JSON object")
    result = copy.deepcopy(resource)
    model = _Model(definitions) if definitions is not None else None
    for op in ops:
        _Patcher(result, model).apply(op)
    pruned = _prune(result)
    return pruned if isinstance(pruned, dict) else {}


def _fhir_ops(parameters: object) -> list[_Op]:
    if not isinstance(parameters, dict) or parameters.get("resourceType") != "Parameters":
        raise invalid("A FHIRPath Patch document must be a Parameters resource")
    params = parameters.get("parameter", [])
    if not isinstance(params, list):
        raise invalid("Parameters.parameter must be an array")
    return [_fhir_op(n, p) for n, p in enumerate(params)]


def _fhir_op(n: int, param: object) -> _Op:
    where = f"FHIRPath Patch parameter {n}"
    if not isinstance(param, dict) or param.get("name") != "operation":
        raise invalid(f"{where}: every parameter must be named 'operation'")
    parts = param.get("part")
    if not isinstance(parts, list):
        raise invalid(f"{where}: an operation needs its parts")
    fields: dict[str, dict[str, Any]] = {}
    for part in parts:
        name = part.get("name") if isinstance(part, dict) else None
        if not isinstance(name, str) or name not in _PARTS:
            raise invalid(f"{where}: unknown part {name!r}; expected one of {', '.join(_PARTS)}")
        if name in fields:
            raise invalid(f"{where}: the part {name!r} is repeated")
        fields[name] = part
    kind = _string_part(fields, "type", ("valueCode", "valueString"), where)
    if kind not in _FHIR_OPS:
        raise invalid(f"{where}: unknown type {kind!r}; expected one of {', '.join(_FHIR_OPS)}")
    path = _string_part(fields, "path", ("valueString",), where)
    needs = {
        "add": ("name", "value"),
        "insert": ("index", "value"),
        "delete": (),
        "replace": ("value",),
        "move": ("source", "destination"),
    }[kind]
    for name in needs:
        if name not in fields:
            raise invalid(f"{where}: a {kind} operation needs a {name!r} part")
    if "value" in needs:
        _check_value(fields["value"], where)
    return _Op(
        n=n,
        type=kind,
        path=path,
        name=_string_part(fields, "name", ("valueString", "valueCode"), where)
        if "name" in needs
        else None,
        value=fields["value"] if "value" in needs else None,
        index=_int_part(fields, "index", where) if "index" in needs else None,
        source=_int_part(fields, "source", where) if "source" in needs else None,
        destination=_int_part(fields, "destination", where) if "destination" in needs else None,
    )


def _check_value(part: dict[str, Any], where: str) -> None:
    """A value part holds exactly one of value[x], resource or named parts (recursively)."""
    typed = [k for k in part if k.startswith("value") and k[5:6].isupper()]
    if len(typed) + ("resource" in part) + ("part" in part) != 1:
        raise invalid(f"{where}: a value needs exactly one of value[x], resource or part")
    if "resource" in part and not isinstance(part["resource"], dict):
        raise invalid(f"{where}: a resource value must be an object")
    if "part" in part:
        parts = part["part"]
        if not isinstance(parts, list) or not parts:
            raise invalid(f"{where}: a complex value needs its parts")
        for sub in parts:
            if not isinstance(sub, dict) or not isinstance(sub.get("name"), str) or not sub["name"]:
                raise invalid(f"{where}: each part of a complex value needs a name")
            _check_value(sub, where)


def _string_part(
    fields: dict[str, dict[str, Any]], name: str, keys: tuple[str, ...], where: str
) -> str:
    part = fields.get(name)
    if part is None:
        raise invalid(f"{where}: the {name!r} part is missing")
    for key in keys:
        value = part.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    raise invalid(f"{where}: the {name!r} part needs a non-empty {' or '.join(keys)}")


def _int_part(fields: dict[str, dict[str, Any]], name: str, where: str) -> int:
    part = fields[name]
    for key in _INT_KEYS:
        value = part.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    raise invalid(f"{where}: the {name!r} part needs a valueInteger of 0 or more")


# --- FHIRPath Patch: type information from the StructureDefinitions --------------------------


@dataclass(frozen=True)
class _Ref:
    """Where the definition of a node is: a type's StructureDefinition and an element path."""

    sd: str
    path: str

    @property
    def type_name(self) -> str:
        return self.sd if self.sd == self.path else "BackboneElement"


@dataclass(frozen=True)
class _Child:
    """A child element's definition; ``choice`` is its name without ``[x]`` for choices."""

    element: dict[str, Any]
    sd: str
    choice: str | None

    @property
    def is_list(self) -> bool:
        return self.element.get("max") not in ("0", "1")

    def codes(self) -> list[str]:
        return [t.get("code", "") for t in self.element.get("type", [])]

    def suffix_code(self, suffix: str) -> str | None:
        """The type code a choice key suffix (``Quantity``, ``String``) stands for."""
        for code in self.codes():
            if code == suffix or code[:1].upper() + code[1:] == suffix:
                return code
        return None


class _Model:
    """The little type knowledge a patch needs: list-ness and the type of each node."""

    def __init__(self, definitions: Definitions) -> None:
        self.defs = definitions
        self._index: dict[str, dict[str, dict[str, Any]]] = {}

    def elements(self, sd: str) -> dict[str, dict[str, Any]]:
        if sd not in self._index:
            definition = self.defs.types.get(sd, {})
            snapshot = definition.get("snapshot", {}).get("element", [])
            self._index[sd] = {e["path"]: e for e in snapshot if "path" in e}
        return self._index[sd]

    def known(self, ref: _Ref) -> bool:
        return ref.path in self.elements(ref.sd)

    def child(self, ref: _Ref, name: str) -> _Child | None:
        """The definition of the child ``name`` (a plain name or a typed choice key)."""
        elements = self.elements(ref.sd)
        element = elements.get(f"{ref.path}.{name}")
        if element is not None:
            if element["path"].endswith("[x]"):
                return None
            return _Child(element, ref.sd, None)
        choice = elements.get(f"{ref.path}.{name}[x]")
        if choice is not None:
            return _Child(choice, ref.sd, name)
        prefix = f"{ref.path}."
        for path, element in elements.items():
            if path.startswith(prefix) and path.endswith("[x]") and "." not in path[len(prefix) :]:
                base = path[len(prefix) : -3]
                if name.startswith(base) and len(name) > len(base):
                    child = _Child(element, ref.sd, base)
                    if child.suffix_code(name[len(base) :]) is not None:
                        return child
        return None

    def ref(self, child: _Child, key: str, value: Any) -> _Ref | None:
        """The definition of a node found (or to be put) under ``key``."""
        element = child.element
        reference = element.get("contentReference")
        if isinstance(reference, str):
            path = reference.split("#", 1)[-1]
            return _Ref(path.split(".", 1)[0], path)
        if child.choice is not None:
            code = child.suffix_code(key[len(child.choice) :]) if key != child.choice else None
        else:
            codes = child.codes()
            code = codes[0] if len(codes) == 1 else None
        if code is None:
            return None
        if code in ("BackboneElement", "Element"):
            return _Ref(child.sd, element["path"])
        if code in ("Resource", "DomainResource"):
            rt = value.get("resourceType") if isinstance(value, dict) else None
            return _Ref(rt, rt) if isinstance(rt, str) and rt in self.defs.types else None
        if code.startswith(_SYSTEM) or code not in self.defs.types:
            return None
        return _Ref(code, code)


# --- FHIRPath Patch: locating what a path matches --------------------------------------------


@dataclass
class _Loc:
    """Where one match of a path lives: its parent object, key and list index."""

    parent: dict[str, Any]
    key: str
    index: int | None
    ref: _Ref | None = None
    choice: str | None = None  # for a choice key such as deceasedBoolean: "deceased"

    @property
    def value(self) -> Any:
        value = self.parent.get(self.key)
        if self.index is None:
            return value
        if isinstance(value, list) and self.index < len(value):
            return value[self.index]
        return None

    def companion(self, create: bool = False) -> dict[str, Any] | None:
        """The ``_key`` object holding a primitive's id and extensions."""
        key = "_" + self.key
        if self.index is None:
            found = self.parent.get(key)
            if not isinstance(found, dict) and create:
                found = self.parent[key] = {}
            return found if isinstance(found, dict) else None
        items = self.parent.get(key)
        if not isinstance(items, list):
            if not create:
                return None
            items = self.parent[key] = []
        if self.index < len(items) and isinstance(items[self.index], dict):
            found = items[self.index]
            return found if isinstance(found, dict) else None
        if not create:
            return None
        items.extend([None] * (self.index + 1 - len(items)))
        items[self.index] = {}
        new: dict[str, Any] = items[self.index]
        return new


@dataclass
class _Step:
    kind: str  # name | index | call
    name: str
    args: str = ""


def _unsupported(path: str, why: str) -> FhirError:
    return unprocessable(
        f"Cannot locate the FHIRPath Patch path {path!r}: {why}. Supported paths are element "
        "names, [n], where(), first(), last(), tail(), skip(), take(), single(), ofType(), "
        "as() and extension()"
    )


def _parse_path(path: str) -> list[_Step]:
    steps: list[_Step] = []
    i, n = 0, len(path)
    expect_name = True
    while i < n:
        c = path[i]
        if c.isspace():
            i += 1
        elif expect_name:
            ident, i = _identifier(path, i)
            while i < n and path[i].isspace():
                i += 1
            if i < n and path[i] == "(":
                args, i = _balanced(path, i)
                steps.append(_Step("call", ident, args.strip()))
            else:
                steps.append(_Step("name", ident))
            expect_name = False
        elif c == ".":
            expect_name = True
            i += 1
        elif c == "[":
            end = path.find("]", i)
            number = path[i + 1 : end].strip() if end > 0 else ""
            if not number.isdigit() or not number.isascii():
                raise _unsupported(path, "only [n] with a literal index is supported")
            steps.append(_Step("index", number))
            i = end + 1
        else:
            raise _unsupported(path, f"unexpected {c!r} at position {i}")
    if expect_name:
        raise _unsupported(path, "it is empty or ends with '.'")
    return steps


def _identifier(path: str, i: int) -> tuple[str, int]:
    if path[i] == "`":
        end = path.find("`", i + 1)
        if end < 0:
            raise _unsupported(path, "unterminated `identifier`")
        return path[i + 1 : end], end + 1
    start = i
    while i < len(path) and (path[i].isalnum() or path[i] == "_") and path[i].isascii():
        i += 1
    if i == start or path[start].isdigit():
        raise _unsupported(path, f"expected an element name at position {start}")
    return path[start:i], i


def _balanced(path: str, i: int) -> tuple[str, int]:
    depth, start, quote = 0, i + 1, ""
    while i < len(path):
        c = path[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "'`\"":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return path[start:i], i + 1
        i += 1
    raise _unsupported(path, "unbalanced parentheses")


_ESCAPES = {"'": "'", '"': '"', "`": "`", "\\": "\\", "/": "/", "f": "\f", "n": "\n"}
_ESCAPES.update({"r": "\r", "t": "\t"})


def _string_literal(path: str, text: str) -> str:
    if len(text) < 2 or text[0] != "'" or text[-1] != "'":
        raise _unsupported(path, f"expected a string literal, got {text!r}")
    out: list[str] = []
    i, body = 0, text[1:-1]
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt == "u" and i + 6 <= len(body):
                try:
                    out.append(chr(int(body[i + 2 : i + 6], 16)))
                except ValueError as exc:
                    raise _unsupported(path, "bad \\u escape") from exc
                i += 6
                continue
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        if c == "'":
            raise _unsupported(path, f"expected one string literal, got {text!r}")
        out.append(c)
        i += 1
    return "".join(out)


def _fhirpath(data: Any, expression: str, variables: dict[str, Any]) -> list[Any]:
    """Evaluate FHIRPath on ``data`` (fhirpathpy for now, maison.fhir.fhirpath later)."""
    try:
        result = fhirpathpy.evaluate(data, expression, variables)
    except Exception as exc:  # fhirpathpy raises bare Exception for syntax and type errors
        raise unprocessable(
            f"Cannot evaluate the FHIRPath expression {expression!r}: {exc}"
        ) from exc
    return list(result) if isinstance(result, list) else [result]


class _Locator:
    """Finds the locations a patch path matches in one resource."""

    def __init__(self, root: dict[str, Any], model: _Model | None) -> None:
        self.holder: dict[str, Any] = {_ROOT: root}
        self.root = root
        self.model = model
        rt = root.get("resourceType")
        ref = _Ref(rt, rt) if isinstance(rt, str) else None
        if ref is not None and model is not None and not model.known(ref):
            ref = None
        self.root_loc = _Loc(self.holder, _ROOT, None, ref)

    def is_root(self, loc: _Loc) -> bool:
        return loc.parent is self.holder

    def locate(self, path: str, steps: list[_Step]) -> list[_Loc]:
        locs = [self.root_loc]
        if steps and steps[0].kind == "name" and steps[0].name[:1].isupper():
            if steps[0].name not in (self.root.get("resourceType"), "Resource", "DomainResource"):
                return []
            steps = steps[1:]
        for step in steps:
            if step.kind == "name":
                locs = [c for loc in locs for c in self.children(loc, step.name)]
            elif step.kind == "index":
                locs = locs[int(step.name) : int(step.name) + 1]
            else:
                locs = self.call(path, locs, step)
        return locs

    def children(self, loc: _Loc, name: str) -> Iterator[_Loc]:
        if name == "resourceType" or name.startswith("_"):
            return  # JSON syntax, not elements: FHIRPath cannot reach them
        value = loc.value
        obj: dict[str, Any] | None
        if isinstance(value, dict):
            obj = value
        elif name in ("id", "extension"):
            obj = loc.companion()  # a primitive's id and extensions live in its companion
        else:
            obj = None
        if obj is None:
            return
        child = self.model.child(loc.ref, name) if self.model and loc.ref else None
        keys = [name] if name in obj or "_" + name in obj else []
        choice: str | None = None
        if not keys and (child is None or child.choice is not None):
            keys = [
                k
                for k in obj
                if k.startswith(name) and len(k) > len(name) and k[len(name)].isupper()
            ]
            if child is not None:
                keys = [k for k in keys if child.suffix_code(k[len(name) :]) is not None]
            choice = name if keys else None
        for key in keys:
            found = obj.get(key)
            typed = self.model.child(loc.ref, key) if self.model and loc.ref else None
            if isinstance(found, list) or (found is None and isinstance(obj.get("_" + key), list)):
                items = found if isinstance(found, list) else obj["_" + key]
                for i, item in enumerate(items):
                    yield _Loc(obj, key, i, self._ref(typed, key, item), choice)
            else:
                yield _Loc(obj, key, None, self._ref(typed, key, found), choice)

    def _ref(self, child: _Child | None, key: str, value: Any) -> _Ref | None:
        if child is None or self.model is None:
            return None
        return self.model.ref(child, key, value)

    def call(self, path: str, locs: list[_Loc], step: _Step) -> list[_Loc]:
        name, args = step.name, step.args
        if name in ("first", "last", "tail", "single") and args:
            raise _unsupported(path, f"{name}() takes no argument")
        if name == "first":
            return locs[:1]
        if name == "last":
            return locs[-1:]
        if name == "tail":
            return locs[1:]
        if name == "single":
            if len(locs) > 1:
                raise unprocessable(f"single() in {path!r} found {len(locs)} elements")
            return locs
        if name in ("skip", "take"):
            if not args.isdigit() or not args.isascii():
                raise _unsupported(path, f"{name}() needs a literal integer")
            return locs[int(args) :] if name == "skip" else locs[: int(args)]
        if name in ("ofType", "as"):
            wanted = args.strip("` ").rsplit(".", 1)[-1]
            if not wanted:
                raise _unsupported(path, f"{name}() needs a type name")
            return [loc for loc in locs if self._type_name(path, loc) == wanted]
        if name == "extension":
            url = _string_literal(path, args)
            return [
                c
                for loc in locs
                for c in self.children(loc, "extension")
                if isinstance(c.value, dict) and c.value.get("url") == url
            ]
        if name == "where":
            if not args:
                raise _unsupported(path, "where() needs a criterion")
            variables = {"resource": self.root, "rootResource": self.root}
            return [loc for loc in locs if _fhirpath(loc.value, args, variables) == [True]]
        raise _unsupported(path, f"the function {name}() is not supported")

    def _type_name(self, path: str, loc: _Loc) -> str:
        value = loc.value
        if isinstance(value, dict) and isinstance(value.get("resourceType"), str):
            return str(value["resourceType"])
        if loc.ref is not None:
            return loc.ref.type_name
        if loc.choice is not None:
            suffix = loc.key[len(loc.choice) :]
            if self.model is not None:
                return suffix  # a primitive choice has no _Ref: its suffix is the type
            return suffix[:1].lower() + suffix[1:] if suffix in _PRIMITIVE_SUFFIXES else suffix
        raise _unsupported(path, f"the type of {loc.key!r} is not known here")


_PRIMITIVE_SUFFIXES = {
    "Base64Binary", "Boolean", "Canonical", "Code", "Date", "DateTime", "Decimal", "Id",
    "Instant", "Integer", "Markdown", "Oid", "PositiveInt", "String", "Time", "UnsignedInt",
    "Uri", "Url", "Uuid",
}  # fmt: skip


# --- FHIRPath Patch: applying one operation --------------------------------------------------


class _Patcher:
    """Applies one operation in place on the working copy."""

    def __init__(self, root: dict[str, Any], model: _Model | None) -> None:
        self.root = root
        self.model = model
        self.locator = _Locator(root, model)

    def apply(self, op: _Op) -> None:
        getattr(self, "_" + op.type)(op)

    def _one(self, op: _Op, steps: list[_Step], verb: str) -> _Loc:
        locs = self.locator.locate(op.path, steps)
        if not locs:
            raise unprocessable(f"No content found at {op.path} when {verb}")
        if len(locs) > 1:
            raise unprocessable(
                f"{op.where()}: the path matches {len(locs)} elements where exactly one is needed"
            )
        return locs[0]

    def _list_slot(self, op: _Op, verb: str) -> tuple[dict[str, Any], str, _Child | None]:
        steps = _parse_path(op.path)
        last = steps[-1]
        if last.kind != "name" or (len(steps) == 1 and last.name[:1].isupper()):
            raise unprocessable(f"{op.where()}: the path must end with the name of a list")
        container = self._one(op, steps[:-1], verb)
        obj = container.value
        if not isinstance(obj, dict):
            raise unprocessable(f"{op.where()}: the path's parent is not an element")
        child = self._child(op, container, last.name)
        if child is not None and not child.is_list:
            raise unprocessable(f"{op.where()}: {last.name!r} is not a repeating element")
        items = obj.get(last.name)
        if items is not None and not isinstance(items, list):
            raise unprocessable(f"{op.where()}: {last.name!r} is not a list here")
        return obj, last.name, child

    def _child(self, op: _Op, container: _Loc, name: str) -> _Child | None:
        if self.model is None or container.ref is None:
            return None
        child = self.model.child(container.ref, name)
        if child is None:
            raise unprocessable(
                f"{op.where()}: {name!r} is not an element of {container.ref.type_name}"
            )
        return child

    def _value(self, op: _Op, ref: _Ref | None) -> tuple[Any, Any, str | None]:
        assert op.value is not None
        return _Builder(self.model, op.where()).build(op.value, ref)

    def _ref(self, child: _Child | None, key: str) -> _Ref | None:
        if self.model is None or child is None or child.choice is not None:
            return None
        return self.model.ref(child, key, None)

    def _add(self, op: _Op) -> None:
        assert op.name is not None
        container = self._one(op, _parse_path(op.path), "adding")
        value = container.value
        obj: dict[str, Any] | None
        if isinstance(value, dict):
            obj = value
        elif op.name in ("id", "extension") and not self.locator.is_root(container):
            obj = container.companion(create=True)
        else:
            obj = None
        if obj is None:
            raise unprocessable(f"{op.where()}: cannot add {op.name!r} to a primitive value")
        child = self._child(op, container, op.name)
        new, companion, suffix = self._value(op, self._ref(child, op.name))
        key = op.name
        if child is not None and child.choice is not None:
            if key == child.choice:
                if suffix is None:
                    raise unprocessable(f"{op.where()}: a choice element needs a typed value[x]")
                key = child.choice + suffix
            if any(
                k.startswith(child.choice) and k[len(child.choice) :][:1].isupper() for k in obj
            ):
                raise unprocessable(f"{op.where()}: {child.choice}[x] already has a value")
        is_list = child.is_list if child is not None else isinstance(obj.get(key), list)
        if is_list:
            items = obj.setdefault(key, [])
            if not isinstance(items, list):
                raise unprocessable(f"{op.where()}: {key!r} is not a list here")
            items.append(new)
            _companion_insert(obj, key, len(items) - 1, companion)
        else:
            if key in obj:
                raise unprocessable(
                    f"{op.where()}: {key!r} already has a value (use replace to change it)"
                )
            obj[key] = new
            if companion is not None:
                obj["_" + key] = companion

    def _insert(self, op: _Op) -> None:
        assert op.index is not None
        obj, key, child = self._list_slot(op, "inserting")
        items = obj.get(key) or []
        if op.index > len(items):
            raise unprocessable(
                f"{op.where()}: index {op.index} is outside the list of {len(items)} elements"
            )
        new, companion, _suffix = self._value(op, self._ref(child, key))
        items.insert(op.index, new)
        obj[key] = items
        _companion_insert(obj, key, op.index, companion)

    def _move(self, op: _Op) -> None:
        assert op.source is not None and op.destination is not None
        obj, key, _child = self._list_slot(op, "moving")
        items = obj.get(key) or []
        for which, index in (("source", op.source), ("destination", op.destination)):
            if index >= len(items):
                raise unprocessable(
                    f"{op.where()}: {which} {index} is outside the list of {len(items)} elements"
                )
        items.insert(op.destination, items.pop(op.source))
        companions = obj.get("_" + key)
        if isinstance(companions, list):
            companions.extend([None] * (len(items) - len(companions)))
            companions.insert(op.destination, companions.pop(op.source))

    def _replace(self, op: _Op) -> None:
        loc = self._one(op, _parse_path(op.path), "replacing")
        if self.locator.is_root(loc):
            raise unprocessable(f"{op.where()}: the whole resource cannot be replaced")
        new, companion, suffix = self._value(op, loc.ref)
        key = loc.key
        retyped = loc.choice + suffix if loc.choice is not None and suffix is not None else key
        if retyped != key and loc.index is None:
            # deceasedBoolean replaced by a dateTime value becomes deceasedDateTime
            del loc.parent[key]
            loc.parent.pop("_" + key, None)
            key = retyped
        if loc.index is None:
            loc.parent[key] = new
        else:
            loc.parent[key][loc.index] = new
        if companion is not None:
            target = _Loc(loc.parent, key, loc.index).companion(create=True)
            assert target is not None
            target.clear()
            target.update(companion)

    def _delete(self, op: _Op) -> None:
        locs = self.locator.locate(op.path, _parse_path(op.path))
        if not locs:
            return
        if len(locs) > 1:
            raise unprocessable(
                f"{op.where()}: the path matches {len(locs)} elements; only one can be deleted"
            )
        loc = locs[0]
        if self.locator.is_root(loc):
            raise unprocessable(f"{op.where()}: the whole resource cannot be deleted")
        if loc.index is None:
            loc.parent.pop(loc.key, None)
            loc.parent.pop("_" + loc.key, None)
            return
        for key in (loc.key, "_" + loc.key):
            items = loc.parent.get(key)
            if isinstance(items, list) and loc.index < len(items):
                del items[loc.index]
            if isinstance(items, list) and all(i is None for i in items):
                del loc.parent[key]


def _companion_insert(obj: dict[str, Any], key: str, index: int, companion: Any) -> None:
    """Keep a primitive list's ``_key`` companion aligned after inserting at ``index``."""
    companions = obj.get("_" + key)
    if isinstance(companions, list):
        companions.extend([None] * (index - len(companions)))
        companions.insert(index, companion)
    elif companion is not None:
        obj["_" + key] = [None] * index + [companion] + [None] * (len(obj[key]) - index - 1)


class _Builder:
    """Turns an operation's ``value`` part into the JSON of the element to put."""

    def __init__(self, model: _Model | None, where: str) -> None:
        self.model = model
        self.where = where

    def build(self, part: dict[str, Any], ref: _Ref | None) -> tuple[Any, Any, str | None]:
        """Return (value, primitive companion or None, value[x] type suffix or None)."""
        typed = [k for k in part if k.startswith("value") and k[5:6].isupper()]
        if typed:
            name = typed[0]
            companion = part.get("_" + name)
            return copy.deepcopy(part[name]), copy.deepcopy(companion), name[5:]
        if "resource" in part:
            return copy.deepcopy(part["resource"]), None, None
        return self._element(part["part"], ref), None, None

    def _element(self, parts: list[dict[str, Any]], ref: _Ref | None) -> dict[str, Any]:
        """Build a complex value from named parts (shapes checked by ``_check_value``)."""
        collected: dict[str, list[tuple[Any, Any]]] = {}
        children: dict[str, _Child | None] = {}
        for sub in parts:
            name: str = sub["name"]
            sub_child = self.model.child(ref, name) if self.model and ref else None
            if self.model is not None and ref is not None and sub_child is None:
                raise unprocessable(f"{self.where}: {name!r} is not an element of {ref.type_name}")
            sub_ref = None
            if self.model is not None and sub_child is not None and sub_child.choice is None:
                sub_ref = self.model.ref(sub_child, name, None)
            value, companion, suffix = self.build(sub, sub_ref)
            sub_key = name
            if sub_child is not None and sub_child.choice == name:
                if suffix is None:
                    raise unprocessable(f"{self.where}: {name}[x] needs a typed value[x]")
                sub_key = name + suffix
            collected.setdefault(sub_key, []).append((value, companion))
            children[sub_key] = sub_child
        out: dict[str, Any] = {}
        for sub_key, values in collected.items():
            sub_child = children[sub_key]
            as_list = sub_child.is_list if sub_child is not None else len(values) > 1
            if not as_list and len(values) > 1:
                raise unprocessable(f"{self.where}: {sub_key!r} cannot repeat")
            companions = [c for _, c in values]
            if as_list:
                out[sub_key] = [v for v, _ in values]
                if any(c is not None for c in companions):
                    out["_" + sub_key] = companions
            else:
                out[sub_key] = values[0][0]
                if companions[0] is not None:
                    out["_" + sub_key] = companions[0]
        return out


_EMPTY = object()


def _prune(value: Any, companion: bool = False) -> Any:
    """Drop the empty objects, arrays and nulls a patch leaves behind (FHIR forbids them)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            pruned = _prune(item, key.startswith("_"))
            if pruned is not _EMPTY and pruned is not None:
                out[key] = pruned
        return out or _EMPTY
    if isinstance(value, list):
        items = [_prune(item, companion) for item in value]
        if companion:
            items = [None if i is _EMPTY else i for i in items]
        else:
            items = [i for i in items if i is not _EMPTY]
        return items if any(i is not None for i in items) else _EMPTY
    return value
