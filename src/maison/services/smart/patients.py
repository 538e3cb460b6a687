"""The patient side of sign-in: the account interface of Mon espace santé-like patient
accounts, and finding a patient by INS for a professional's standalone launch.

https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html#launch-context-arrives-with-your-access_token
"""

from __future__ import annotations

import re
from datetime import date
from functools import partial
from typing import Any, Final, Protocol

from maison.fhir.definitions import Definitions
from maison.fhir.errors import FhirError
from maison.fhir.search import SearchQuery, parse_search
from maison.store.interface import SearchPage
from maison.store.sql import SqlStore, SqlTx

INS_SYSTEM: Final = "urn:oid:1.2.250.1.213.1.4.8"  # matricule INS (NIR)
#: Looked up in this order: the NIR, the NIA, then the test and demo NIR of the INS guide.
INS_SYSTEMS: Final = (
    INS_SYSTEM,
    "urn:oid:1.2.250.1.213.1.4.9",
    "urn:oid:1.2.250.1.213.1.4.10",
    "urn:oid:1.2.250.1.213.1.4.11",
)
#: 13 characters and the key; the department (characters 6-7) may be Corsica's 2A or 2B
_INS: Final = re.compile(r"[0-9]{6}[0-9AB][0-9]{8}")
_ID: Final = re.compile(r"[A-Za-z0-9\-.]{1,64}")

#: French messages for the account errors (``AccountError.code``).
ACCOUNT_MESSAGES: Final = {
    "unknown": "INS, mot de passe ou code incorrect.",
    "bad_credentials": "INS, mot de passe ou code incorrect.",
    "totp_required": "Saisissez le code à usage unique de votre application d'authentification.",
    "totp_invalid": "INS, mot de passe ou code incorrect.",
    "locked": "Compte temporairement bloqué après plusieurs échecs : réessayez plus tard.",
}


class PatientAccountLike(Protocol):
    """A verified patient account (``maison.security.patient_accounts.PatientAccount``)."""

    account_id: str
    ins: str
    patient_id: str
    display: str
    totp_enrolled: bool


class RepresentationLike(Protocol):
    """A patient an account holder may act for (``…patient_accounts.Representation``)."""

    patient_id: str
    ins: str
    display: str
    kind: str
    valid_until: date | None


class PatientDirectory(Protocol):
    """What sign-in needs of the patient accounts (``…patient_accounts.PatientAccounts``)."""

    def verify(self, ins: str, password: str, totp_code: str) -> Any:
        """The account of these credentials; raises ``AccountError`` (with ``code``): https://www.rfc-editor.org/rfc/rfc6238."""
        ...

    def represented(self, account_id: str) -> list[Any]:
        """The patients this account holder represents: https://hl7.org/fhir/R4/relatedperson.html."""
        ...


def normalize_ins(text: str) -> str | None:
    """A matricule INS without spaces, or None when it has not the NIR's shape: https://esante.gouv.fr/produits-services/referentiel-ins."""
    value = "".join(text.split()).upper()
    return value if _INS.fullmatch(value) else None


def find_patient_by_ins(store: SqlStore, defs: Definitions, ins: str) -> str | None:
    """The one active Patient holding this matricule INS (``Patient?identifier=``
    ``urn:oid:1.2.250.1.213.1.4.8|INS``, then NIA, test and demo systems), None when none or
    several: https://hl7.org/fhir/R4/search.html#token."""
    for system in INS_SYSTEMS:
        query = parse_search(defs, "Patient", [("identifier", f"{system}|{ins}"), ("_count", "2")])
        page = store.read(partial(_search, query=query))
        found = [
            e.resource
            for e in page.entries
            if e.resource is not None and e.resource.get("active") is not False
        ]
        if found:
            return str(found[0]["id"]) if len(found) == 1 else None
    return None


def _search(tx: SqlTx, query: SearchQuery) -> SearchPage:
    return tx.search(query)


def patient_exists(store: SqlStore, patient_id: str) -> bool:
    """Whether ``Patient/<id>`` exists and is not deleted: https://hl7.org/fhir/R4/http.html#read."""
    if not _ID.fullmatch(patient_id):
        return False
    try:
        stored = store.read(lambda tx: tx.read("Patient", patient_id))
    except FhirError:
        return False
    return stored is not None and stored.resource is not None and not stored.deleted
