"""Patient accounts for Mon espace santé sign-in: a password and a TOTP second factor, bound to a
qualified INS, and the legal representatives (parents, guardians) who act for a patient.

* An account is bound to one Patient whose identity is *qualifiée* (INS retrieved through INSi
  and checked against a high-trust document, RNIV); one account per INS.
* Passwords: at least 12 characters of 3 of the 4 kinds (lower case, upper case, digits,
  others), or 16 of any kind (CNIL délibération 2022-100, ANSSI guide on authentication),
  hashed with scrypt (RFC 7914; N=2**17, r=8, p=1: the OWASP minimum, about 0.5 s and
  128 MiB per hash). Five failures lock the account for 15 minutes (the "access restriction"
  of the CNIL recommendation).
* Second factor: TOTP (RFC 6238, 30 s, 6 digits, SHA-1, as authenticator apps expect), one
  step of tolerance each way, each code accepted once; the secret is encrypted at rest with
  the store's data keys.
* Legal representatives are FHIR data: a ``RelatedPerson`` whose ``patient`` is the
  represented Patient, ``identifier`` the representative's INS, ``relationship`` a
  v3-RoleCode plus our own code naming the French legal basis, ``period`` the validity. Only
  RelatedPersons carrying our code count (a contact imported from a hospital is not a
  mandate); a parent's or a minor's guardian's representation ends the day before the
  represented person turns 18, computed from their ``birthDate``.

The module sits below ``services``: reading an identity's status is the INS service's job, so
the caller passes it in (``identity``; see ``maison.services.ins.accounts``).

https://www.rfc-editor.org/rfc/rfc6238 · https://hl7.org/fhir/R4/relatedperson.html ·
https://www.cnil.fr/fr/mots-de-passe-une-nouvelle-recommandation-pour-maitriser-sa-securite
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
import unicodedata
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

import pyotp

from maison.fhir.errors import Category, FhirError
from maison.fhir.search import Criterion, SearchQuery, TokenValue
from maison.store import accounts as rows
from maison.store.accounts import AccountRow
from maison.store.crypto import Keyring
from maison.store.interface import Stored
from maison.store.sql import SqlStore, SqlTx

PARIS: Final = ZoneInfo("Europe/Paris")
MIN_LENGTH: Final = 12  # with 3 of the 4 kinds of characters (CNIL 2022-100, ANSSI)
PASSPHRASE_LENGTH: Final = 16  # any characters
MAX_LENGTH: Final = 256  # a longer one only costs the server
MAX_FAILURES: Final = 5
LOCK_SECONDS: Final = 15 * 60
TOTP_INTERVAL: Final = 30
TOTP_DIGITS: Final = 6
TOTP_WINDOW: Final = 1  # steps accepted before and after the current one
MAJORITY: Final = 18

ROLE_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
REPRESENTATION_CS: Final = "https://maison.example.org/fhir/CodeSystem/legal-representation"


@dataclass(frozen=True)
class Kind:
    """A kind of legal representation: its v3-RoleCode, its French meaning, whether it ends
    at the represented person's majority (https://hl7.org/fhir/R4/v3/RoleCode/cs.html)."""

    code: str
    role: str
    role_display: str
    meaning: str
    minors_only: bool


KINDS: Final[dict[str, Kind]] = {
    k.code: k
    for k in (
        Kind("parent", "PRN", "parent", "Titulaire de l'autorité parentale", True),
        Kind("guardian", "GUARD", "guardian", "Tuteur d'un mineur (tutelle des mineurs)", True),
        Kind("tutelle", "GUARD", "guardian", "Tuteur d'un majeur protégé (tutelle)", False),
        Kind(
            "habilitation",
            "POWATT",
            "power of attorney",
            "Personne habilitée (habilitation familiale)",
            False,
        ),
    )
}


class AccountError(Exception):
    """Why an account operation was refused: ``code`` for programs, ``reason`` for people
    (https://www.rfc-editor.org/rfc/rfc6238)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class InsIdentity:
    """What the INS service says of a Patient: its identity status (PROV, RECUP, VALI, QUAL),
    whether it is qualified with an INS in force, and that INS
    (https://hl7.fr/ig/fhir/core/StructureDefinition-fr-core-identity-reliability.html)."""

    qualified: bool
    status: str | None
    status_display: str
    ins_system: str | None
    ins: str | None
    identifier: Mapping[str, Any] | None  # the INS identifier as carried by the Patient


IdentityReader = Callable[[Mapping[str, Any]], InsIdentity]


@dataclass(frozen=True)
class PatientAccount:
    """A patient's account, as sign-in sees it (https://www.rfc-editor.org/rfc/rfc6238)."""

    account_id: str
    ins: str
    patient_id: str
    display: str
    totp_enrolled: bool


@dataclass(frozen=True)
class Representation:
    """A record an account may act for (https://hl7.org/fhir/R4/relatedperson.html)."""

    patient_id: str
    ins: str
    display: str
    kind: str  # a key of KINDS, or "self"
    valid_until: date | None  # last day (inclusive)
    related_person_id: str | None = None


@dataclass(frozen=True)
class Enrolment:
    """A new TOTP secret, shown once to the patient (https://www.rfc-editor.org/rfc/rfc6238)."""

    account: PatientAccount
    totp_secret: str
    provisioning_uri: str  # otpauth:// for an authenticator app


@dataclass(frozen=True)
class ScryptParams:
    """scrypt cost (https://www.rfc-editor.org/rfc/rfc7914): N = 2**log_n, r, p."""

    log_n: int = 17
    r: int = 8
    p: int = 1

    def text(self) -> str:
        """As written in a hash: ``ln=17,r=8,p=1``."""
        return f"ln={self.log_n},r={self.r},p={self.p}"


def password_problem(password: str, ins: str | None = None) -> str | None:
    """None, or the rule a password breaks (https://www.cnil.fr/fr/mots-de-passe-une-nouvelle-recommandation-pour-maitriser-sa-securite)."""
    rule = (
        f"a password needs at least {MIN_LENGTH} characters of at least 3 kinds among lower "
        "case letters, upper case letters, digits and other characters, or at least "
        f"{PASSPHRASE_LENGTH} characters of any kind (CNIL délibération 2022-100)"
    )
    text = _normal(password)
    if "\x00" in text:
        return "a password cannot hold a NUL character"
    if len(text) > MAX_LENGTH:
        return f"a password has at most {MAX_LENGTH} characters"
    if ins and ins in text:
        return "a password cannot contain the INS"
    if len(set(text)) < 5:
        return f"{rule}; this one repeats too few different characters"
    kinds = sum(
        (
            any(c.islower() for c in text),
            any(c.isupper() for c in text),
            any(c.isdigit() for c in text),
            any(not c.isalnum() for c in text),
        )
    )
    if len(text) >= PASSPHRASE_LENGTH or (len(text) >= MIN_LENGTH and kinds >= 3):
        return None
    return f"{rule}; this one has {len(text)} characters of {kinds} kind(s)"


def hash_password(password: str, params: ScryptParams | None = None) -> str:
    """An scrypt hash with its salt and cost (https://www.rfc-editor.org/rfc/rfc7914)."""
    p = params or ScryptParams()
    salt = os.urandom(16)
    digest = _scrypt(_normal(password), salt, p)
    return f"scrypt${p.text()}${_b64(salt)}${_b64(digest)}"


def check_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches an scrypt hash, in constant time (https://www.rfc-editor.org/rfc/rfc7914)."""
    params, salt, expected = _parse_hash(encoded)
    return hmac.compare_digest(_scrypt(_normal(password), salt, params), expected)


def _parse_hash(encoded: str) -> tuple[ScryptParams, bytes, bytes]:
    scheme, cost, salt, digest = encoded.split("$")
    if scheme != "scrypt":
        raise ValueError(f"unknown password hash scheme {scheme!r}")
    fields = dict(part.split("=", 1) for part in cost.split(","))
    params = ScryptParams(int(fields["ln"]), int(fields["r"]), int(fields["p"]))
    return params, _unb64(salt), _unb64(digest)


def _scrypt(text: str, salt: bytes, p: ScryptParams) -> bytes:
    n = 2**p.log_n
    return hashlib.scrypt(
        text.encode(), salt=salt, n=n, r=p.r, p=p.p, maxmem=256 * n * p.r, dklen=32
    )


def _normal(text: str) -> str:
    # the same password typed on two keyboards (é composed or not) is the same password
    return unicodedata.normalize("NFKC", text)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def majority_day(birth_date: str) -> date | None:
    """The day a person born on ``birth_date`` (FHIR date, maybe partial) turns 18; a partial
    date gives the earliest possible day; 29 February gives 1 March (https://hl7.org/fhir/R4/datatypes.html#date)."""
    try:
        parts = [int(x) for x in birth_date.split("-")]
    except ValueError:
        return None
    if not parts or len(parts) > 3:
        return None
    padded = [*parts, 1, 1]
    year, month, day = parts[0] + MAJORITY, padded[1], padded[2]
    try:
        return date(year, month, day)
    except ValueError:
        pass
    try:  # born on 29 February: of age on 1 March of a common year
        return date(year, month, day - 1) + timedelta(days=1) if day > 1 else None
    except ValueError:
        return None


def name_of(resource: Mapping[str, Any]) -> str:
    """A person's name for display: the official name first (https://hl7.org/fhir/R4/datatypes.html#HumanName)."""
    names = [n for n in resource.get("name") or [] if isinstance(n, Mapping)]
    names.sort(key=lambda n: n.get("use") != "official")
    for n in names:
        if n.get("text"):
            return str(n["text"])
        given = " ".join(str(g) for g in n.get("given") or [])
        text = f"{given} {n.get('family') or ''}".strip()
        if text:
            return text
    return ""


class PatientAccounts:
    """Patient accounts and their legal representatives on a SQL store.

    https://www.rfc-editor.org/rfc/rfc6238 · https://hl7.org/fhir/R4/relatedperson.html
    """

    def __init__(
        self,
        store: SqlStore,
        keyring: Keyring | None = None,
        clock: Callable[[], float] = time.time,
        *,
        identity: IdentityReader,
        params: ScryptParams | None = None,
        issuer: str = "Maison e-santé",
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        """Accounts in ``store``; secrets sealed with ``keyring`` (the store's by default);
        ``identity`` reads a Patient's INS status (https://www.rfc-editor.org/rfc/rfc6238)."""
        self.store = store
        self.keyring = keyring or store.keyring
        self.clock = clock
        self.identity = identity
        self.params = params or ScryptParams()
        self.issuer = issuer
        self.new_id = new_id
        self._decoy_hash: str | None = None

    @property
    def _decoy(self) -> str:
        """What an unknown INS is checked against, so it costs the time a known one does."""
        if self._decoy_hash is None:
            self._decoy_hash = hash_password("decoy password, never matches", self.params)
        return self._decoy_hash

    # -- accounts ----------------------------------------------------------------------------
    def create(self, patient_id: str, password: str) -> Enrolment:
        """Open the account of a Patient whose INS identity is qualified, with a new TOTP
        secret (https://www.rfc-editor.org/rfc/rfc6238; CNIL délibération 2022-100)."""
        patient = self._patient(patient_id)
        ident = self._qualified(patient_id, patient)
        assert ident.ins is not None and ident.ins_system is not None
        problem = password_problem(password, ident.ins)
        if problem:
            raise AccountError("weak_password", _sentence(problem))
        password_hash = hash_password(password, self.params)  # slow: outside the write unit
        secret = pyotp.random_base32()
        account_id = self.new_id()
        now = self._now_text()
        row = AccountRow(
            account_id=account_id,
            ins=ident.ins,
            ins_system=ident.ins_system,
            patient_id=patient_id,
            password_hash=password_hash,
            totp_secret=self._seal(account_id, secret),
            totp_confirmed=False,
            totp_last_step=None,
            failed_count=0,
            locked_until=None,
            created_at=now,
            updated_at=now,
        )

        def insert(tx: SqlTx) -> None:
            if rows.by_ins(tx.conn, row.ins) or rows.by_patient(tx.conn, patient_id):
                raise AccountError("exists", _exists(patient_id))
            rows.insert(tx.conn, row)

        try:
            self.store.write(insert)
        except FhirError as err:  # two creations at once: the unique index refused the second
            if err.category is Category.CONFLICT:
                raise AccountError("exists", _exists(patient_id)) from None
            raise
        account = self._account(row, name_of(patient))
        return Enrolment(account, secret, self._uri(secret, account))

    def get(self, account_id: str) -> PatientAccount:
        """One account by id (https://www.rfc-editor.org/rfc/rfc6238)."""
        row = self._row(account_id)
        return self._account(row, self._display(row.patient_id))

    def by_ins(self, ins: str) -> PatientAccount:
        """The account bound to a matricule INS (https://www.rfc-editor.org/rfc/rfc6238)."""
        row = self.store.read(lambda tx: rows.by_ins(tx.conn, ins.strip()))
        if row is None:
            raise AccountError("unknown", "There is no account for this INS.")
        return self._account(row, self._display(row.patient_id))

    def listing(self, limit: int = 100, after: str | None = None) -> list[PatientAccount]:
        """Accounts in INS order, after the INS ``after`` (https://www.rfc-editor.org/rfc/rfc6238)."""
        found = self.store.read(lambda tx: rows.listing(tx.conn, limit, after))
        bodies = self.store.read(lambda tx: tx.read_many("Patient", [r.patient_id for r in found]))
        return [
            self._account(
                r, name_of(bodies[r.patient_id].resource or {}) if r.patient_id in bodies else ""
            )
            for r in found
        ]

    def verify(self, ins: str, password: str, totp_code: str) -> PatientAccount:
        """Sign in with the INS, the password and a TOTP code: constant-time checks, a lock
        after 5 failures for 15 minutes (CNIL délibération 2022-100), each code used once
        (https://www.rfc-editor.org/rfc/rfc6238#section-5.2)."""
        row = self.store.read(lambda tx: rows.by_ins(tx.conn, ins.strip()))
        if row is None:
            check_password(password, self._decoy)
            raise AccountError("bad_credentials", "The INS or the password is wrong.")
        now = self.clock()
        if row.locked_until is not None and now < row.locked_until:
            check_password(password, self._decoy)
            raise AccountError("locked", _locked(row.locked_until))
        if not check_password(password, row.password_hash):
            self._fail(row, now)
            raise AccountError("bad_credentials", "The INS or the password is wrong.")
        code = "".join(totp_code.split())
        if not code:
            raise AccountError(
                "totp_required", "Enter the 6-digit code shown by your authenticator app."
            )
        step = self._matching_step(row, code, now)
        if step is None:
            self._fail(row, now)
            raise AccountError(
                "totp_invalid",
                "The code is wrong or has expired; enter the code your authenticator app "
                "shows now.",
            )
        stamp = self._now_text()
        if not self.store.write(lambda tx: rows.claim_step(tx.conn, row.account_id, step, stamp)):
            self._fail(row, now)
            raise AccountError(
                "totp_invalid", "This code was already used; wait for the next one (30 seconds)."
            )
        self.store.write(lambda tx: rows.clear_failures(tx.conn, row.account_id, stamp))
        if _parse_hash(row.password_hash)[0] != self.params:  # cost raised since: rehash
            rehashed = hash_password(password, self.params)
            self.store.write(
                lambda tx: rows.set_password_hash(tx.conn, row.account_id, rehashed, stamp)
            )
        patient = self._patient(row.patient_id)
        ident = self.identity(patient)
        if not ident.qualified or ident.ins != row.ins:
            raise AccountError(
                "not_qualified",
                "The identity of your record is no longer qualified with this INS; contact "
                "your health care provider.",
            )
        return replace(self._account(row, name_of(patient)), totp_enrolled=True)

    def set_password(self, account_id: str, password: str) -> None:
        """Replace the password of an authenticated patient, under the same rule (CNIL
        délibération 2022-100: https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000046123442)."""
        row = self._row(account_id)
        problem = password_problem(password, row.ins)
        if problem:
            raise AccountError("weak_password", _sentence(problem))
        hashed = hash_password(password, self.params)
        stamp = self._now_text()
        self.store.write(lambda tx: rows.set_password_hash(tx.conn, account_id, hashed, stamp))

    def reset_totp(self, account_id: str) -> Enrolment:
        """A new TOTP secret replacing the old one (lost phone): https://www.rfc-editor.org/rfc/rfc6238."""
        row = self._row(account_id)
        secret = pyotp.random_base32()
        sealed = self._seal(account_id, secret)
        stamp = self._now_text()
        self.store.write(lambda tx: rows.set_totp_secret(tx.conn, account_id, sealed, stamp))
        account = replace(self._account(row, self._display(row.patient_id)), totp_enrolled=False)
        return Enrolment(account, secret, self._uri(secret, account))

    def current_code(self, ins: str) -> str:
        """The TOTP code of this moment, for development tools only (it reads the secret):
        https://www.rfc-editor.org/rfc/rfc6238."""
        row = self.store.read(lambda tx: rows.by_ins(tx.conn, ins.strip()))
        if row is None:
            raise AccountError("unknown", "There is no account for this INS.")
        totp = self._totp(row)
        return totp.generate_otp(int(self.clock() // TOTP_INTERVAL))

    def patient_by_ins(self, ins: str) -> str:
        """The id of the Patient carrying this matricule INS in force: https://hl7.fr/ig/fhir/core/StructureDefinition-fr-core-patient-ins.html."""
        value = ins.strip()
        query = SearchQuery(
            "Patient",
            criteria=[
                Criterion("identifier", "token", None, (TokenValue(None, value, True),)),
            ],
            count=10,
        )
        page = self.store.read(lambda tx: tx.search(query))
        found = [
            e.id
            for e in page.entries
            if e.resource is not None and self.identity(e.resource).ins == value
        ]
        if len(found) != 1:
            raise AccountError(
                "unknown",
                "No patient record carries this INS."
                if not found
                else f"{len(found)} patient records carry this INS; merge them first.",
            )
        return found[0]

    # -- legal representatives ------------------------------------------------------------
    def add_representative(
        self, patient_id: str, representative_account_id: str, kind: str, valid_until: date | None
    ) -> Representation:
        """Record that an account holder legally represents a patient, as a RelatedPerson
        (https://hl7.org/fhir/R4/relatedperson.html); a minor's parent or guardian until 18."""
        spec = KINDS.get(kind)
        if spec is None:
            raise AccountError(
                "invalid", f"Unknown kind {kind!r}; the kinds are {', '.join(sorted(KINDS))}."
            )
        rep = self._row(representative_account_id)
        if rep.patient_id == patient_id:
            raise AccountError("invalid", "A person does not represent themself.")
        patient = self._patient(patient_id)
        ident = self.identity(patient)
        today = self._today()
        until = self._effective_end(patient, spec, valid_until)
        if until is not None and until < today:
            raise AccountError(
                "no_representation",
                f"This representation would end on {until.isoformat()}, before today"
                + (" (the patient is of age)" if spec.minors_only else "")
                + ".",
            )
        rep_patient = self._patient(rep.patient_id)
        rep_ident = self.identity(rep_patient)
        identifier = dict(rep_ident.identifier or {"system": rep.ins_system, "value": rep.ins})
        if identifier.get("value") != rep.ins:
            identifier = {"system": rep.ins_system, "value": rep.ins}
        body: dict[str, Any] = {
            "resourceType": "RelatedPerson",
            "meta": {"tag": [{"system": REPRESENTATION_CS, "code": "legal-representation"}]},
            "active": True,
            "patient": {"reference": f"Patient/{patient_id}"},
            "identifier": [identifier],
            "relationship": [
                {
                    "coding": [
                        {"system": ROLE_CODE, "code": spec.role, "display": spec.role_display},
                        {"system": REPRESENTATION_CS, "code": spec.code, "display": spec.meaning},
                    ],
                    "text": spec.meaning,
                }
            ],
            "period": {"start": today.isoformat()},
        }
        if rep_patient.get("name"):
            body["name"] = rep_patient["name"]
        if until is not None:
            body["period"]["end"] = until.isoformat()

        def write(tx: SqlTx) -> Stored:
            for old in self._mandates(tx, rep.ins_system, rep.ins):
                if _patient_ref(old.resource) == patient_id and _active(old.resource or {}):
                    stored, _ = tx.update("RelatedPerson", old.id, {**body, "id": old.id})
                    return stored
            return tx.create("RelatedPerson", body)

        stored = self.store.write(write)
        return Representation(
            patient_id, ident.ins or "", name_of(patient), spec.code, until, stored.id
        )

    def remove_representative(self, patient_id: str, representative_account_id: str) -> int:
        """End an account holder's representations of a patient today (``active`` false,
        ``period.end``), keeping them as history (https://hl7.org/fhir/R4/relatedperson.html)."""
        rep = self._row(representative_account_id)
        today = self._today().isoformat()

        def write(tx: SqlTx) -> int:
            ended = 0
            for old in self._mandates(tx, rep.ins_system, rep.ins):
                body = old.resource or {}
                if _patient_ref(body) != patient_id or not _active(body):
                    continue
                period = {**(body.get("period") or {}), "end": today}
                tx.update("RelatedPerson", old.id, {**body, "active": False, "period": period})
                ended += 1
            return ended

        ended = self.store.write(write)
        if not ended:
            raise AccountError("no_representation", "This account does not represent this patient.")
        return ended

    def represented(self, account_id: str) -> list[Representation]:
        """The records this account may act for today, its own excluded
        (https://hl7.org/fhir/R4/relatedperson.html)."""
        row = self._row(account_id)
        today = self._today()

        def read(tx: SqlTx) -> list[tuple[Stored, Stored]]:
            mandates = self._mandates(tx, row.ins_system, row.ins)
            wanted = [p for m in mandates if (p := _patient_ref(m.resource)) is not None]
            patients = tx.read_many("Patient", wanted)
            return [
                (m, patients[p])
                for m in mandates
                if (p := _patient_ref(m.resource)) is not None and p in patients
            ]

        out: dict[str, Representation] = {}
        for mandate, patient in self.store.read(read):
            body, target = mandate.resource or {}, patient.resource or {}
            if patient.id == row.patient_id or not _active(body) or target.get("active") is False:
                continue
            spec = _kind_of(body)
            if spec is None:
                continue
            period = body.get("period") or {}
            start = _day(period.get("start"))
            if start is not None and start > today:
                continue
            until = self._effective_end(target, spec, _day(period.get("end")))
            if until is not None and until < today:
                continue
            ins = self.identity(target).ins or ""
            rep = Representation(patient.id, ins, name_of(target), spec.code, until, mandate.id)
            known = out.get(patient.id)
            if known is None or _later(rep.valid_until, known.valid_until):
                out[patient.id] = rep
        return sorted(out.values(), key=lambda r: (r.display, r.patient_id))

    def act_for(self, account_id: str, patient_id: str) -> Representation:
        """The patient context a token may carry for this account: its own record, or one it
        currently represents; anything else is refused (https://hl7.org/fhir/R4/relatedperson.html)."""
        row = self._row(account_id)
        if patient_id == row.patient_id:
            return Representation(patient_id, row.ins, self._display(patient_id), "self", None)
        for rep in self.represented(account_id):
            if rep.patient_id == patient_id:
                return rep
        raise AccountError(
            "no_representation", "This account may not act for this patient's record."
        )

    # -- helpers -------------------------------------------------------------------------
    def _mandates(self, tx: SqlTx, system: str, ins: str) -> list[Stored]:
        """RelatedPersons naming this INS that carry our legal-representation code."""
        query = SearchQuery(
            "RelatedPerson",
            criteria=[
                Criterion("identifier", "token", None, (TokenValue(system, ins, False),)),
            ],
            count=500,
        )
        return [
            e
            for e in tx.search(query).entries
            if e.resource is not None
            and _kind_of(e.resource) is not None
            and any(
                i.get("system") == system and i.get("value") == ins
                for i in e.resource.get("identifier") or []
                if isinstance(i, Mapping)
            )
        ]

    def _effective_end(
        self, patient: Mapping[str, Any], spec: Kind, until: date | None
    ) -> date | None:
        """The last valid day: the one asked, and for a minor's representative the day before
        majority (no birthDate: none, so the representation never starts)."""
        if not spec.minors_only:
            return until
        birth = patient.get("birthDate")
        majority = majority_day(birth) if isinstance(birth, str) else None
        last = (majority - timedelta(days=1)) if majority else date.min
        return last if until is None or last < until else until

    def _patient(self, patient_id: str) -> dict[str, Any]:
        found = self.store.read(lambda tx: tx.read("Patient", patient_id))
        if found is None or found.deleted or found.resource is None:
            raise AccountError("unknown", f"There is no patient record Patient/{patient_id}.")
        return found.resource

    def _qualified(self, patient_id: str, patient: Mapping[str, Any]) -> InsIdentity:
        ident = self.identity(patient)
        if not ident.qualified or not ident.ins or not ident.ins_system:
            status = ident.status or "none"
            raise AccountError(
                "not_qualified",
                f"The identity of Patient/{patient_id} has status {status} "
                f"({ident.status_display or 'no identity status'}), not QUAL (identité "
                "qualifiée): an account needs an INS retrieved through INSi and checked "
                "against an identity document.",
            )
        return ident

    def _row(self, account_id: str) -> AccountRow:
        row = self.store.read(lambda tx: rows.by_id(tx.conn, account_id))
        if row is None:
            raise AccountError("unknown", "There is no such account.")
        return row

    def _display(self, patient_id: str) -> str:
        found = self.store.read(lambda tx: tx.read("Patient", patient_id))
        return name_of(found.resource) if found and found.resource else ""

    def _account(self, row: AccountRow, display: str) -> PatientAccount:
        return PatientAccount(row.account_id, row.ins, row.patient_id, display, row.totp_confirmed)

    def _fail(self, row: AccountRow, now: float) -> None:
        stamp = self._now_text()
        locked = self.store.write(
            lambda tx: rows.record_failure(
                tx.conn, row.account_id, stamp, MAX_FAILURES, now + LOCK_SECONDS
            )
        )
        if locked:
            raise AccountError("locked", _locked(now + LOCK_SECONDS))

    def _totp(self, row: AccountRow) -> pyotp.TOTP:
        secret = self.keyring.decrypt(row.totp_secret, _aad(row.account_id)).decode()
        return pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_INTERVAL)

    def _matching_step(self, row: AccountRow, code: str, now: float) -> int | None:
        """The time step whose code is ``code`` within the window (all compared: no early exit)."""
        totp = self._totp(row)
        current = int(now // TOTP_INTERVAL)
        found = None
        for step in range(current - TOTP_WINDOW, current + TOTP_WINDOW + 1):
            if hmac.compare_digest(totp.generate_otp(step).encode(), code.encode()):
                found = step
        return found

    def _seal(self, account_id: str, secret: str) -> bytes:
        return self.keyring.encrypt(secret.encode(), _aad(account_id))

    def _uri(self, secret: str, account: PatientAccount) -> str:
        totp = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_INTERVAL)
        # the label names the person, not the INS: authenticator apps back labels up in clear
        return totp.provisioning_uri(name=account.display or "patient", issuer_name=self.issuer)

    def _today(self) -> date:
        return datetime.fromtimestamp(self.clock(), PARIS).date()

    def _now_text(self) -> str:
        return datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _aad(account_id: str) -> bytes:
    return f"patient_account/{account_id}/totp".encode()


def _sentence(problem: str) -> str:
    return problem[0].upper() + problem[1:] + "."


def _exists(patient_id: str) -> str:
    return f"Patient/{patient_id} (or its INS) already has an account."


def _locked(until: float) -> str:
    at = datetime.fromtimestamp(until, PARIS).strftime("%H:%M")
    return (
        f"Too many failed attempts: the account is locked for {LOCK_SECONDS // 60} minutes, "
        f"until {at} (Paris time)."
    )


def _patient_ref(body: Mapping[str, Any] | None) -> str | None:
    ref = ((body or {}).get("patient") or {}).get("reference")
    if isinstance(ref, str) and ref.startswith("Patient/") and "/_history" not in ref:
        return ref.removeprefix("Patient/")
    return None


def _active(body: Mapping[str, Any]) -> bool:
    return body.get("active") is not False


def _kind_of(body: Mapping[str, Any]) -> Kind | None:
    for concept in body.get("relationship") or []:
        for coding in (concept or {}).get("coding") or []:
            if coding.get("system") == REPRESENTATION_CS and coding.get("code") in KINDS:
                return KINDS[coding["code"]]
    return None


def _day(text: Any) -> date | None:
    if not isinstance(text, str) or len(text) < 10:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def _later(a: date | None, b: date | None) -> bool:
    return (a is None and b is not None) or (a is not None and b is not None and a > b)


__all__ = [
    "KINDS",
    "AccountError",
    "Enrolment",
    "IdentityReader",
    "InsIdentity",
    "PatientAccount",
    "PatientAccounts",
    "Representation",
    "ScryptParams",
    "check_password",
    "hash_password",
    "majority_day",
    "password_problem",
]
