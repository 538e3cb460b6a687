"""The DMP habilitation matrix as data: which profession (TRE_G15, optionally narrowed by a
savoir-faire and a rôle) may read which DMP document type (JDV_J66) or class (JDV_J57).

A matrix is a CSV with the columns :data:`COLUMNS`, one cell a row. :func:`load_csv` validates
it (every error with its line and a reason) and builds an immutable :class:`Matrix` with its
index; :func:`decide` answers in a few dict lookups: the most specific cell wins, and nothing
allows what no cell allows (default deny). Pure: no I/O, no clock; the code system aliases
(LOINC under three names) come in as the ``canonical`` callable, since ``security`` may not
import ``terminology`` (sibling layers).

Specificity, most specific first (a savoir-faire or rôle narrows the profession before the type
narrows the class):

1. profession + savoir-faire + rôle + type   5. profession + rôle + type
2. profession + savoir-faire + rôle + class  6. profession + rôle + class
3. profession + savoir-faire + type          7. profession + type
4. profession + savoir-faire + class         8. profession + class

https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000048256185
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Protocol

COLUMNS: Final = (
    "profession",
    "savoir_faire",
    "role",
    "document_type",
    "allowed",
    "status",
    "source",
)
REQUIRED: Final = frozenset({"profession", "document_type", "allowed", "status", "source"})
STATUSES: Final = ("provisional", "official")
ALLOWED: Final = {"yes": True, "no": False}

LOINC: Final = "http://loinc.org"
NOS: Final = "https://mos.esante.gouv.fr/NOS/"
TRE_A03: Final = f"{NOS}TRE_A03-ClasseDocument/FHIR/TRE-A03-ClasseDocument"
TRE_A05: Final = f"{NOS}TRE_A05-TypeDocComplementaire/FHIR/TRE-A05-TypeDocComplementaire"
TRE_A10: Final = f"{NOS}TRE_A10-NomenclatureURN/FHIR/TRE-A10-NomenclatureURN"
TRE_A12: Final = f"{NOS}TRE_A12-NomenclatureASTM/FHIR/TRE-A12-NomenclatureASTM"
#: ``document_type`` prefix -> the code system of the J66 codes it names.
TYPE_ALIASES: Final = MappingProxyType({"LOINC": LOINC, "TRE_A05": TRE_A05, "TRE_A12": TRE_A12})
CLASS: Final = "CLASS"

Canonical = Callable[[str], str]
#: (profession, savoir_faire, role, is_class, canonical system, code): one cell's key
Key = tuple[str, str, str, bool, str, str]


class ProfessionalFacts(Protocol):
    """What a decision reads of a professional (``ActingProfessional`` has it).

    https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000048256185
    """

    @property
    def profession(self) -> str | None: ...

    @property
    def savoir_faire_type(self) -> str | None: ...

    @property
    def savoir_faire(self) -> str | None: ...

    @property
    def role(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class MatrixError:
    """Why a matrix file is refused, at which line (1 is the header) and column.

    https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000048256185
    """

    line: int
    reason: str
    column: str | None = None
    kind: str = "invalid"  # columns, value, duplicate, contradiction, unknown-code

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", column {self.column}" if self.column else "")
        return f"{where}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Cell:
    """One row of the matrix: a profession (narrowed or not) by a type or a class → allowed.

    https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000048256185
    """

    line: int
    profession: str
    savoir_faire: str  # "TYPE:CODE" (TRE_R04 type, code), "" = any
    role: str  # TRE_R21 fonction, "" = any
    document_type: str  # as normalized: LOINC:…, TRE_A05:…, TRE_A12:… or CLASS:…
    system: str  # canonical system of the type or class code
    code: str
    is_class: bool
    allowed: bool
    status: str  # provisional | official
    source: str

    @property
    def key(self) -> Key:
        """What two cells may not share."""
        return (
            self.profession,
            self.savoir_faire,
            self.role,
            self.is_class,
            self.system,
            self.code,
        )

    @property
    def rule_id(self) -> str:
        """A stable id of the cell (its key, the same in every version of the matrix)."""
        who = "/".join((self.profession, self.savoir_faire or "*", self.role or "*"))
        return f"habilitation-matrix:{who}/{self.document_type}"

    def row(self) -> tuple[str, ...]:
        """The normalized CSV row (in :data:`COLUMNS` order)."""
        return (
            self.profession,
            self.savoir_faire,
            self.role,
            self.document_type,
            "yes" if self.allowed else "no",
            self.status,
            self.source,
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """Allow or deny, with the rule, the matrix cell it rests on, and a reason a person reads.

    https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000048256185
    """

    allowed: bool
    rule_id: str
    cell: Cell | None
    reason: str


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """The codes a matrix is checked against (from the loaded NOS); None: not checked.

    https://mos.esante.gouv.fr/NOS/
    """

    professions: frozenset[str] | None = None  # TRE_G15 codes
    types: frozenset[tuple[str, str]] | None = None  # JDV_J66 (canonical system, code)
    classes: frozenset[tuple[str, str]] | None = None  # JDV_J57 (canonical system, code)

    def unchecked(self) -> list[str]:
        """The checks this vocabulary cannot make, said for a person."""
        out = []
        if self.professions is None:
            out.append("profession codes (the NOS TRE_G15-ProfessionSante is not loaded)")
        if self.types is None:
            out.append("document type codes (the NOS JDV_J66-TypeCode-DMP is not loaded)")
        if self.classes is None:
            out.append("document class codes (the NOS JDV_J57-ClassCode-DMP is not loaded)")
        return out


#: The order in which decide() looks (see the module docstring).
_LEVELS: Final = (
    (True, True, False),
    (True, True, True),
    (True, False, False),
    (True, False, True),
    (False, True, False),
    (False, True, True),
    (False, False, False),
    (False, False, True),
)


@dataclass(frozen=True)
class Matrix:
    """An immutable, versioned habilitation matrix and its decision index.

    ``version`` is the SHA-256 of the normalized content (same cells, same version, whatever the
    row order or spacing); ``loaded_at``/``loaded_by`` say when and by whom it was activated.
    https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000048256185
    """

    cells: tuple[Cell, ...]
    version: str
    canonical: Canonical = field(repr=False, compare=False)
    loaded_at: str | None = None
    loaded_by: str | None = None
    _index: Mapping[Key, Cell] = field(
        default_factory=lambda: MappingProxyType({}), repr=False, compare=False
    )
    #: professions with cells narrowed by a savoir-faire / a rôle (others skip those lookups)
    _narrowed: Mapping[str, tuple[bool, bool]] = field(
        default_factory=lambda: MappingProxyType({}), repr=False, compare=False
    )

    def cell(self, key: Key) -> Cell | None:
        """The cell of a key."""
        return self._index.get(key)

    def stamped(self, loaded_at: str | None, loaded_by: str | None) -> Matrix:
        """The same matrix with who activated it and when."""
        return Matrix(
            self.cells,
            self.version,
            self.canonical,
            loaded_at,
            loaded_by,
            self._index,
            self._narrowed,
        )

    def to_csv(self) -> str:
        """The normalized content (sorted rows), whose SHA-256 is the version."""
        return normalized_csv(self.cells)

    @property
    def provisional(self) -> int:
        """How many cells are provisional."""
        return sum(1 for c in self.cells if c.status == "provisional")


def normalized_csv(cells: Iterable[Cell]) -> str:
    """The cells as a CSV in a canonical form: header, rows sorted, fields trimmed.

    https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000048256185
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(sorted(c.row() for c in cells))
    return out.getvalue()


# --- loading -------------------------------------------------------------------------------------
def _document_type(value: str, canonical: Canonical) -> tuple[str, str, str, bool] | str:
    """(normalized text, canonical system, code, is_class), or why it is not one."""
    alias, sep, code = value.partition(":")
    alias, code = alias.strip(), code.strip()
    if not sep or not code:
        return (
            f"'{value}' is not a document type: write ALIAS:CODE, e.g. LOINC:11488-4, "
            "TRE_A05:SYNTH or CLASS:10 (a whole J57 class)"
        )
    upper = alias.upper()
    if upper == CLASS:
        class_system = TRE_A10 if code.startswith("urn:") else TRE_A03
        return f"{CLASS}:{code}", canonical(class_system), code, True
    system = TYPE_ALIASES.get(upper)
    if system is None:
        return (
            f"unknown code system '{alias}' in '{value}': use LOINC:, TRE_A05:, TRE_A12: "
            "(a J66 type) or CLASS: (a J57 class)"
        )
    return f"{upper}:{code}", canonical(system), code, False


def _cell(
    line: int, raw: Mapping[str, str], canonical: Canonical, errors: list[MatrixError]
) -> Cell | None:
    def text(column: str) -> str:
        return " ".join((raw.get(column) or "").split())

    before = len(errors)
    profession = text("profession")
    if not profession:
        errors.append(MatrixError(line, "the profession (a TRE_G15 code) is empty", "profession"))
    elif " " in profession:
        errors.append(
            MatrixError(line, f"'{profession}' is not a TRE_G15 code", "profession", "value")
        )
    savoir_faire = text("savoir_faire")
    if savoir_faire:
        kind, sep, code = savoir_faire.partition(":")
        if not sep or not kind.strip() or not code.strip():
            errors.append(
                MatrixError(
                    line,
                    f"'{savoir_faire}' is not a savoir-faire: write TYPE:CODE (TRE_R04 type and "
                    "its code, e.g. S:SM54), or leave empty for any",
                    "savoir_faire",
                    "value",
                )
            )
        else:
            savoir_faire = f"{kind.strip()}:{code.strip()}"
    role = text("role")
    parsed = _document_type(text("document_type"), canonical)
    if isinstance(parsed, str):
        errors.append(MatrixError(line, parsed, "document_type", "value"))
    allowed = ALLOWED.get(text("allowed").lower())
    if allowed is None:
        errors.append(
            MatrixError(
                line, f"allowed is '{text('allowed')}': write yes or no", "allowed", "value"
            )
        )
    status = text("status").lower()
    if status not in STATUSES:
        errors.append(
            MatrixError(
                line,
                f"status is '{text('status')}': write provisional or official",
                "status",
                "value",
            )
        )
    source = text("source")
    if not source:
        errors.append(
            MatrixError(
                line, "the source is empty: cite the arrêté, a spec or a statement", "source"
            )
        )
    if len(errors) > before or isinstance(parsed, str) or allowed is None:
        return None
    doc, system, code, is_class = parsed
    return Cell(
        line, profession, savoir_faire, role, doc, system, code, is_class, allowed, status, source
    )


def _vocabulary_errors(cell: Cell, vocabulary: Vocabulary) -> list[MatrixError]:
    out = []
    if vocabulary.professions is not None and cell.profession not in vocabulary.professions:
        out.append(
            MatrixError(
                cell.line,
                f"the profession '{cell.profession}' is not a code of TRE_G15-ProfessionSante",
                "profession",
                "unknown-code",
            )
        )
    known = vocabulary.classes if cell.is_class else vocabulary.types
    if known is not None and (cell.system, cell.code) not in known:
        what = (
            "a class of JDV_J57-ClassCode-DMP"
            if cell.is_class
            else "a type of JDV_J66-TypeCode-DMP"
        )
        out.append(
            MatrixError(
                cell.line,
                f"'{cell.document_type}' is not {what}",
                "document_type",
                "unknown-code",
            )
        )
    return out


def load_csv(
    text: str,
    *,
    canonical: Canonical,
    vocabulary: Vocabulary | None = None,
    loaded_at: str | None = None,
    loaded_by: str | None = None,
) -> Matrix | list[MatrixError]:
    """A matrix from its CSV text, or every reason it is refused (never raises).

    ``canonical`` names a code system under one URL (the composition root passes
    ``maison.terminology.source.canonical_system``); ``vocabulary`` checks the codes.
    https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000048256185
    """
    body = text.removeprefix("\ufeff")
    rows: list[tuple[int, list[str]]] = []  # (first physical line, fields)
    reader = csv.reader(io.StringIO(body, newline=""))
    try:
        start = 1
        for row in reader:
            rows.append((start, row))
            start = reader.line_num + 1
    except csv.Error as exc:
        return [MatrixError(start, f"not a readable CSV line: {exc}", None, "columns")]
    rows = [(n, r) for n, r in rows if any(c.strip() for c in r)]
    if not rows:
        return [MatrixError(1, "the file is empty: a header line is needed", None, "columns")]
    header_line, header_row = rows[0]
    header = [h.strip().lower() for h in header_row]
    errors: list[MatrixError] = []
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        errors.append(
            MatrixError(
                header_line,
                f"unknown column(s) {', '.join(repr(u) for u in unknown)}: the columns are "
                f"{', '.join(COLUMNS)}",
                None,
                "columns",
            )
        )
    missing = sorted(REQUIRED - set(header), key=COLUMNS.index)
    if missing:
        errors.append(
            MatrixError(header_line, f"missing column(s) {', '.join(missing)}", None, "columns")
        )
    twice = sorted({h for h in header if header.count(h) > 1})
    if twice:
        errors.append(
            MatrixError(header_line, f"column(s) {', '.join(twice)} given twice", None, "columns")
        )
    if errors:
        return errors
    cells: list[Cell] = []
    for n, row in rows[1:]:
        if len(row) != len(header):
            errors.append(
                MatrixError(
                    n,
                    f"{len(row)} fields where the header has {len(header)} (a comma inside a "
                    "field needs double quotes)",
                    None,
                    "columns",
                )
            )
            continue
        cell = _cell(n, dict(zip(header, row, strict=True)), canonical, errors)
        if cell is not None:
            cells.append(cell)
            if vocabulary is not None:
                errors.extend(_vocabulary_errors(cell, vocabulary))
    seen: dict[Key, Cell] = {}
    for cell in cells:
        first = seen.setdefault(cell.key, cell)
        if first is cell:
            continue
        who = _who(cell)
        if first.allowed == cell.allowed:
            errors.append(
                MatrixError(
                    cell.line,
                    f"duplicate: line {first.line} already gives {who} for {cell.document_type}",
                    None,
                    "duplicate",
                )
            )
        else:
            errors.append(
                MatrixError(
                    cell.line,
                    f"contradiction: line {first.line} says {_verb(first)} and this line says "
                    f"{_verb(cell)} for {who} and {cell.document_type}",
                    None,
                    "contradiction",
                )
            )
    if errors:
        return sorted(errors, key=lambda e: e.line)
    return build(cells, canonical, loaded_at=loaded_at, loaded_by=loaded_by)


def _verb(cell: Cell) -> str:
    return "allowed" if cell.allowed else "denied"


def _who(cell: Cell) -> str:
    parts = [f"profession {cell.profession}"]
    if cell.savoir_faire:
        parts.append(f"savoir-faire {cell.savoir_faire}")
    if cell.role:
        parts.append(f"rôle {cell.role}")
    return " + ".join(parts)


def build(
    cells: Iterable[Cell],
    canonical: Canonical,
    *,
    loaded_at: str | None = None,
    loaded_by: str | None = None,
) -> Matrix:
    """The matrix of valid, distinct cells, with its version and its decision index.

    https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000048256185
    """
    frozen = tuple(cells)
    digest = hashlib.sha256(normalized_csv(frozen).encode()).hexdigest()
    narrowed: dict[str, tuple[bool, bool]] = {}
    for c in frozen:
        sf, role = narrowed.get(c.profession, (False, False))
        narrowed[c.profession] = (sf or bool(c.savoir_faire), role or bool(c.role))
    return Matrix(
        frozen,
        digest,
        canonical,
        loaded_at,
        loaded_by,
        MappingProxyType({c.key: c for c in frozen}),
        MappingProxyType(narrowed),
    )


# --- deciding ------------------------------------------------------------------------------------
def _coding(coding: Any, canonical: Canonical) -> tuple[str, str] | None:
    if not isinstance(coding, Mapping):
        return None
    system, code = coding.get("system"), coding.get("code")
    if not isinstance(system, str) or not isinstance(code, str) or not system or not code:
        return None
    try:
        return canonical(system), code
    except Exception:  # a caller's callable must not make decide() partial
        return None


def _shown(coding: Any) -> str:
    if not isinstance(coding, Mapping):
        return "(none)"
    return f"{coding.get('system')}#{coding.get('code')}"


def decide(
    matrix: Matrix,
    professional: ProfessionalFacts | None,
    document_type: Mapping[str, Any] | None,
    document_class: Mapping[str, Any] | None = None,
) -> Decision:
    """Whether the professional's profession may read a document of this type (J66 Coding) and
    class (J57 Coding): the most specific cell decides, no cell means deny. Total: never raises.

    https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000048256185
    """
    profession = getattr(professional, "profession", None)
    if not isinstance(profession, str) or not profession:
        return Decision(
            False,
            "habilitation-matrix:no-profession",
            None,
            "the professional has no profession (TRE_G15): no cell of the matrix can allow him",
        )
    canonical = matrix.canonical
    type_key = _coding(document_type, canonical)
    class_key = _coding(document_class, canonical)
    sf_type = getattr(professional, "savoir_faire_type", None)
    sf_code = getattr(professional, "savoir_faire", None)
    role = getattr(professional, "role", None)
    has_sf, has_role = matrix._narrowed.get(profession, (False, False))
    sf = f"{sf_type}:{sf_code}" if has_sf and sf_type and sf_code else ""
    role_ = role if has_role and isinstance(role, str) else ""
    index = matrix._index
    for with_sf, with_role, is_class in _LEVELS:
        if (with_sf and not sf) or (with_role and not role_):
            continue
        target = class_key if is_class else type_key
        if target is None:
            continue
        key = (
            profession,
            sf if with_sf else "",
            role_ if with_role else "",
            is_class,
            target[0],
            target[1],
        )
        cell = index.get(key)
        if cell is not None:
            verb = "allows" if cell.allowed else "denies"
            return Decision(
                cell.allowed,
                cell.rule_id,
                cell,
                f"the matrix cell of line {cell.line} ({cell.status}) {verb} {_who(cell)} "
                f"for {cell.document_type}",
            )
    return Decision(
        False,
        "habilitation-matrix:default-deny",
        None,
        f"no cell of the matrix allows profession {profession} for type "
        f"{_shown(document_type)} (class {_shown(document_class)}): default deny",
    )


# --- comparing -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MatrixDiff:
    """Cells added, removed, and changed (allowed, status or source) from one matrix to another.

    https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000048256185
    """

    added: int
    removed: int
    changed: int

    @property
    def total(self) -> int:
        """Every cell that differs."""
        return self.added + self.removed + self.changed


def diff(old: Matrix | None, new: Matrix) -> MatrixDiff:
    """What changes from ``old`` (None: nothing) to ``new``.

    https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000048256185
    """
    before = {c.key: c.row() for c in old.cells} if old is not None else {}
    after = {c.key: c.row() for c in new.cells}
    changed = sum(1 for k, row in after.items() if k in before and before[k] != row)
    return MatrixDiff(
        added=sum(1 for k in after if k not in before),
        removed=sum(1 for k in before if k not in after),
        changed=changed,
    )


__all__ = [
    "COLUMNS",
    "Cell",
    "Decision",
    "Matrix",
    "MatrixDiff",
    "MatrixError",
    "ProfessionalFacts",
    "Vocabulary",
    "build",
    "decide",
    "diff",
    "load_csv",
    "normalized_csv",
]
