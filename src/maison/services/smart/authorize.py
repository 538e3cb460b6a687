"""The authorization code flow of SMART apps, step by step, without a web framework.

A request to ``/auth/authorize`` is checked (client, exact redirect URI, ``aud`` = the FHIR
base URL, PKCE S256, state, scopes within the registration, launch id); errors found before
the redirect URI is trusted are shown as a page, never redirected. The checked request
becomes a *flow*: a server-side record (store meta ``smart:w:<id>``, ten minutes) whose
unguessable id the pages' forms carry, bound to the browser by a cookie, and advanced by
atomic compare-and-set, so each form is used once.

Who signs in:

* a professional, through Pro Santé Connect (the :class:`RelyingParty`, whatever its issuer):
  he chooses among his activities when he has several, his context is checked against the
  Annuaire, and with ``launch/patient`` he picks the patient by INS; with an EHR launch the
  patient comes from the launch, which he must have created himself;
* a patient, with INS, password and one-time code; an account holder who represents others
  picks whose record to act for. The patient's token: ``sub`` the account id, ``patient`` the
  chosen Patient id, ``fhirUser`` ``Patient/<own id>`` for his own record and, acting as a
  representative, ``RelatedPerson/<id>`` (the mandate naming him, kept by the patient
  accounts); then also a claim ``representative``: ``{"kind", "for": "Patient/<represented>",
  "self": "Patient/<own id>", "valid_until"}``. Only ``patient/`` resource scopes are
  granted to patients.

Scopes: within the client's registration; ``system/`` never here (backend services only);
``patient/`` ones only with a patient context (dropped otherwise); ``user/`` ones only for a
professional. No consent page: the registration bounds the scopes (development platform).

https://hl7.org/fhir/smart-app-launch/app-launch.html
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Final
from urllib.parse import urlencode

import orjson

from maison.security.admin import ADMIN_SCOPE
from maison.security.oidc_rp import PendingLogin, RelyingParty, RelyingPartyError, Session
from maison.security.principal import Scope
from maison.security.professional import (
    ProfessionalContext,
    ProfessionalContextError,
    from_userinfo,
    token_claims,
)
from maison.services.psc.provider import AuthorizeError, Records, s256
from maison.services.smart.clients import OTHER_SCOPES, ClientRegistry, SmartClient
from maison.services.smart.grants import Grant, Tokens
from maison.services.smart.launch import LaunchError, resolve_launch
from maison.services.smart.patients import (
    ACCOUNT_MESSAGES,
    PatientDirectory,
    normalize_ins,
)

FLOW_TTL: Final = 600
_FLOW_KEY, _PSC_KEY = "smart:w:", "smart:p:"
#: Scopes that are no resource scopes and may be granted to anyone.
CONTEXT_SCOPES: Final = OTHER_SCOPES
EXPIRED: Final = (
    "Cette demande de connexion a expiré ou a déjà été utilisée : recommencez depuis l'application."
)


class FlowError(Exception):
    """A form of an unknown, expired, used or foreign flow (https://www.rfc-editor.org/rfc/rfc6749#section-10.12)."""


@dataclass(frozen=True)
class Step:
    """What the browser gets next: a page (``choose``, ``patient``, ``activity``,
    ``pick_patient``, ``represent``, ``refused``) or a redirect (``location``).

    https://hl7.org/fhir/smart-app-launch/app-launch.html#obtain-authorization-code
    """

    page: str
    flow: str = ""
    client_id: str = ""
    location: str | None = None
    message: str = ""
    status: int = 200
    choices: tuple[tuple[str, str], ...] = ()  # (value, label)
    back: str | None = None  # the client's redirect URI with error=access_denied


@dataclass
class Authorizer:
    """The SMART authorization endpoint and its sign-in steps: https://hl7.org/fhir/smart-app-launch/app-launch.html#obtain-authorization-code."""

    clients: ClientRegistry
    tokens: Tokens
    records: Records
    fhir_base: str
    psc: Callable[[], RelyingParty]
    check_professional: Callable[[ProfessionalContext], None]
    find_patient: Callable[[str], str | None]  # INS -> Patient id
    patient_exists: Callable[[str], bool]
    accounts: Callable[[], PatientDirectory | None] = lambda: None
    #: IDNPS of the professionals granted the administration scope
    admins: Callable[[], frozenset[str]] = frozenset
    account_error: type[Exception] = Exception
    clock: Callable[[], float] = time.time

    # --- the request -------------------------------------------------------------------------
    def check(self, params: Mapping[str, str]) -> tuple[SmartClient, dict[str, Any]]:
        """Check an authorization request (page errors until the redirect URI is trusted): https://hl7.org/fhir/smart-app-launch/app-launch.html#obtain-authorization-code."""
        client = self.clients.get(params.get("client_id"))
        if client is None:
            raise AuthorizeError("invalid_client", "client_id inconnu")
        redirect_uri = params.get("redirect_uri", "")
        if not redirect_uri or not client.allows_redirect(redirect_uri):
            raise AuthorizeError(
                "invalid_request",
                "redirect_uri non enregistrée pour ce client (aucune redirection)",
            )
        state = params.get("state", "")

        def refuse(error: str, description: str) -> AuthorizeError:
            return AuthorizeError(
                error, description, _with_query(redirect_uri, error, description, state)
            )

        if params.get("response_type") != "code":
            raise refuse("unsupported_response_type", "response_type must be code")
        if not state or len(state) > 512:
            raise refuse("invalid_request", "state is required")
        if _strip(params.get("aud", "")) != _strip(self.fhir_base):
            raise refuse("invalid_request", f"aud must be this FHIR server: {self.fhir_base}")
        challenge = params.get("code_challenge", "")
        if params.get("code_challenge_method") != "S256" or not 43 <= len(challenge) <= 128:
            raise refuse("invalid_request", "PKCE is required: code_challenge_method=S256")
        requested = params.get("scope", "").split()
        granted = client.grantable(requested)
        if not any(Scope.parse(s) for s in granted) and "openid" not in granted:
            raise refuse("invalid_scope", "no requested scope is registered for this client")
        request: dict[str, Any] = {
            "cid": client.client_id,
            "ru": redirect_uri,
            "state": state,
            "cc": challenge,
            "scope": granted,
            "nonce": params.get("nonce") or None,
        }
        launch_id = params.get("launch")
        if launch_id:
            try:
                launch = resolve_launch(self.records, launch_id, self.clock)
            except LaunchError as error:
                raise refuse("invalid_request", f"launch refused: {error}") from None
            request["launch"] = {
                "patient": launch.patient,
                "encounter": launch.encounter,
                "pro": launch.professional,
            }
        return client, request

    def start(self, params: Mapping[str, str], browser: str) -> Step:
        """A new flow for a checked request: the professional sign-in at once for an EHR
        launch, else the choice between professional and patient sign-in:
        https://hl7.org/fhir/smart-app-launch/app-launch.html#obtain-authorization-code."""
        client, request = self.check(params)
        fid = secrets.token_urlsafe(24)
        flow = {
            "req": request,
            "b": s256(browser),
            "exp": int(self.clock()) + FLOW_TTL,
            "step": "choose",
        }
        self.records.set_meta(_FLOW_KEY + fid, orjson.dumps(flow).decode())
        if "launch" in request:
            return self._to_psc(fid, orjson.dumps(flow).decode(), flow)
        return Step("choose", fid, client.client_id)

    # --- flow records ------------------------------------------------------------------------
    def _load(self, fid: str, browser: str, *steps: str) -> tuple[str, dict[str, Any]]:
        if not fid or len(fid) > 48:
            raise FlowError(EXPIRED)
        raw = self.records.get_meta(_FLOW_KEY + fid)
        if raw is None or raw == "used":
            raise FlowError(EXPIRED)
        flow: dict[str, Any] = orjson.loads(raw)
        if not hmac.compare_digest(str(flow["b"]), s256(browser)):
            raise FlowError(EXPIRED)
        if int(flow["exp"]) <= self.clock() or flow["step"] not in steps:
            raise FlowError(EXPIRED)
        return raw, flow

    def _save(self, fid: str, before: str, flow: Mapping[str, Any] | None) -> str:
        after = orjson.dumps(flow).decode() if flow is not None else "used"
        if self.records.swap_meta(_FLOW_KEY + fid, before, after) != before:
            raise FlowError(EXPIRED)  # the same form, posted twice
        return after

    def _step(self, fid: str, flow: Mapping[str, Any], page: str, **more: Any) -> Step:
        return Step(page, fid, str(flow["req"]["cid"]), **more)

    def _back(self, flow: Mapping[str, Any], description: str) -> str:
        req = flow["req"]
        return _with_query(req["ru"], "access_denied", description, req["state"])

    # --- choose ------------------------------------------------------------------------------
    def choose(self, fid: str, browser: str, who: str) -> Step:
        """The user says who signs in (``professional`` or ``patient``): https://hl7.org/fhir/smart-app-launch/app-launch.html#obtain-authorization-code."""
        raw, flow = self._load(fid, browser, "choose")
        if who == "professional":
            return self._to_psc(fid, raw, flow)
        if who == "patient":
            flow["step"] = "patient"
            self._save(fid, raw, flow)
            return self._step(fid, flow, "patient")
        raise FlowError(EXPIRED)

    def cancel(self, fid: str, browser: str) -> Step:
        """The user refuses: back to the app with ``access_denied``: https://www.rfc-editor.org/rfc/rfc6749#section-4.1.2.1."""
        raw, flow = self._load(
            fid, browser, "choose", "patient", "activity", "pick_patient", "represent"
        )
        self._save(fid, raw, None)
        return self._step(fid, flow, "redirect", location=self._back(flow, "cancelled by user"))

    # --- professional: Pro Santé Connect -----------------------------------------------------
    def _to_psc(self, fid: str, raw: str, flow: dict[str, Any]) -> Step:
        url, pending = self.psc().start()
        flow["step"] = "psc"
        flow["psc"] = {
            "state": pending.state,
            "nonce": pending.nonce,
            "verifier": pending.code_verifier,
            "at": pending.created_at,
        }
        self._save(fid, raw, flow)
        self.records.set_meta(_PSC_KEY + s256(pending.state), fid)
        return self._step(fid, flow, "redirect", location=url)

    def psc_callback(self, params: Mapping[str, str], browser: str) -> Step:
        """Pro Santé Connect's answer: the professional's session, then his activity:
        https://openid.net/specs/openid-connect-core-1_0.html#AuthResponse."""
        state = params.get("state", "")
        if not state or len(state) > 512:
            raise FlowError(EXPIRED)
        key = _PSC_KEY + s256(state)
        fid = self.records.get_meta(key)
        if fid is None or fid == "used" or self.records.swap_meta(key, fid, "used") != fid:
            raise FlowError(EXPIRED)
        raw, flow = self._load(fid, browser, "psc")
        psc = flow.pop("psc")
        pending = PendingLogin(psc["state"], psc["nonce"], psc["verifier"], float(psc["at"]))
        try:
            session: Session = self.psc().finish(pending, params)
        except RelyingPartyError as error:
            self._save(fid, raw, None)
            return self._step(
                fid,
                flow,
                "refused",
                status=403,
                message=f"Connexion Pro Santé Connect refusée : {error.message}.",
                back=self._back(flow, "Pro Santé Connect sign-in failed"),
            )
        flow["userinfo"] = dict(session.userinfo)
        acr = session.id_claims.get("acr")
        if isinstance(acr, str):
            flow["userinfo"]["acr"] = acr
        flow["auth_time"] = int(session.id_claims.get("auth_time") or self.clock())
        try:
            activities = from_userinfo(flow["userinfo"], 0).activities
        except ProfessionalContextError as error:
            self._save(fid, raw, None)
            return self._refused(fid, flow, error.message)
        if len(activities) > 1:
            flow["step"] = "activity"
            self._save(fid, raw, flow)
            choices = tuple((str(a.index), _activity_label(a)) for a in activities)
            return self._step(fid, flow, "activity", choices=choices)
        return self._professional(fid, raw, flow, 0)

    def choose_activity(self, fid: str, browser: str, activity: str) -> Step:
        """The professional's choice among his activities: https://industriels.esante.gouv.fr/produits-et-services/pro-sante-connect."""
        raw, flow = self._load(fid, browser, "activity")
        if not activity.isdigit() or len(activity) > 4:
            raise FlowError(EXPIRED)
        return self._professional(fid, raw, flow, int(activity))

    def _refused(self, fid: str, flow: Mapping[str, Any], message: str) -> Step:
        return self._step(
            fid,
            flow,
            "refused",
            status=403,
            message=message,
            back=self._back(flow, "the professional was refused"),
        )

    def _professional(self, fid: str, raw: str, flow: dict[str, Any], index: int) -> Step:
        try:
            context = from_userinfo(flow["userinfo"], index)
            self.check_professional(context)
        except ProfessionalContextError as error:
            self._save(fid, raw, None)
            return self._refused(fid, flow, error.message)
        launch = flow["req"].get("launch")
        if launch is not None and launch["pro"] != context.national_id:
            self._save(fid, raw, None)
            return self._refused(fid, flow, "Ce lancement a été créé par un autre professionnel.")
        flow["pro"] = {"sub": context.national_id, "claims": token_claims(context)}
        flow.pop("userinfo", None)
        if launch is None and "launch/patient" in flow["req"]["scope"]:
            flow["step"] = "pick_patient"
            self._save(fid, raw, flow)
            return self._step(fid, flow, "pick_patient")
        patient = launch["patient"] if launch else None
        encounter = launch["encounter"] if launch else None
        return self._finish_professional(fid, raw, flow, patient, encounter)

    def pick_patient(self, fid: str, browser: str, ins: str) -> Step:
        """Standalone launch: the professional names the patient by INS (refused if the
        platform holds no such Patient):
        https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html#launchpatient."""
        raw, flow = self._load(fid, browser, "pick_patient")
        value = normalize_ins(ins)
        if value is None:
            return self._step(
                fid,
                flow,
                "pick_patient",
                status=400,
                message="Saisissez un matricule INS de 15 caractères.",
            )
        patient = self.find_patient(value)
        if patient is None:
            return self._step(
                fid,
                flow,
                "pick_patient",
                status=404,
                message="Aucun patient de la plateforme ne porte cet INS.",
            )
        return self._finish_professional(fid, raw, flow, patient, None)

    def _finish_professional(
        self, fid: str, raw: str, flow: dict[str, Any], patient: str | None, encounter: Any
    ) -> Step:
        admin = str(flow["pro"]["sub"]) in self.admins()
        scopes = [
            s
            for s in flow["req"]["scope"]
            if _context_of(s) == "user"
            or (_context_of(s) == "patient" and patient)
            or (s in CONTEXT_SCOPES and (s != ADMIN_SCOPE or admin))
        ]
        context: dict[str, Any] = {}
        if patient:
            context = {"patient": patient, "need_patient_banner": True}
            if encounter:
                context["encounter"] = encounter
        pro = flow["pro"]
        grant = Grant(
            str(flow["req"]["cid"]),
            str(pro["sub"]),
            tuple(scopes),
            pro["claims"],
            context,
            flow["req"].get("nonce"),
            int(flow.get("auth_time") or self.clock()),
        )
        return self._finish(fid, raw, flow, grant)

    # --- patient -------------------------------------------------------------------------------
    def patient_sign_in(
        self, fid: str, browser: str, ins: str, password: str, totp_code: str
    ) -> Step:
        """A patient's sign-in (INS, password, one-time code): https://hl7.org/fhir/smart-app-launch/app-launch.html#obtain-authorization-code."""
        raw, flow = self._load(fid, browser, "patient")
        accounts = self.accounts()
        if accounts is None:
            return self._step(
                fid,
                flow,
                "patient",
                status=503,
                message="La connexion des patients n'est pas disponible.",
            )
        value = normalize_ins(ins)
        if value is None:
            return self._step(
                fid,
                flow,
                "patient",
                status=400,
                message="Saisissez votre matricule INS (15 caractères).",
            )
        try:
            account = accounts.verify(value, password, totp_code.strip())
        except self.account_error as error:
            code = str(getattr(error, "code", "bad_credentials"))
            message = ACCOUNT_MESSAGES.get(code, ACCOUNT_MESSAGES["bad_credentials"])
            status = 423 if code == "locked" else 401
            return self._step(fid, flow, "patient", status=status, message=message)
        today = date.fromtimestamp(self.clock())
        represented = [
            {
                "patient": r.patient_id,
                "display": r.display,
                "kind": r.kind,
                "until": r.valid_until.isoformat() if r.valid_until else None,
                "related": getattr(r, "related_person_id", None),
            }
            for r in accounts.represented(account.account_id)
            if r.valid_until is None or r.valid_until >= today
        ]
        flow["account"] = {
            "id": account.account_id,
            "patient": account.patient_id,
            "display": account.display,
            "represented": represented,
        }
        if represented:
            flow["step"] = "represent"
            self._save(fid, raw, flow)
            return self._representation_page(fid, flow)
        return self._finish_patient(fid, raw, flow, None)

    def _representation_page(self, fid: str, flow: Mapping[str, Any]) -> Step:
        account = flow["account"]
        choices = [("own", f"Mon dossier ({account['display']})")]
        for i, r in enumerate(account["represented"]):
            choices.append((str(i), f"{r['display']} ({r['kind']})"))
        return self._step(fid, flow, "represent", choices=tuple(choices))

    def represent(self, fid: str, browser: str, choice: str) -> Step:
        """The account holder picks whose record to act for: https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html#launch-context-arrives-with-your-access_token."""
        raw, flow = self._load(fid, browser, "represent")
        if choice == "own":
            return self._finish_patient(fid, raw, flow, None)
        represented = flow["account"]["represented"]
        if not choice.isdigit() or int(choice) >= len(represented):
            raise FlowError(EXPIRED)
        return self._finish_patient(fid, raw, flow, represented[int(choice)])

    def _finish_patient(
        self, fid: str, raw: str, flow: dict[str, Any], represented: Mapping[str, Any] | None
    ) -> Step:
        account = flow["account"]
        own = str(account["patient"])
        patient = str(represented["patient"]) if represented else own
        if not self.patient_exists(patient):
            self._save(fid, raw, None)
            return self._refused(fid, flow, "Ce dossier patient n'existe pas sur la plateforme.")
        scopes = [
            s
            for s in flow["req"]["scope"]
            if _context_of(s) == "patient"
            or (s in CONTEXT_SCOPES and s not in ("launch", ADMIN_SCOPE))
        ]
        if not any(_context_of(s) for s in scopes) and "openid" not in scopes:
            self._save(fid, raw, None)
            location = _with_query(
                flow["req"]["ru"],
                "invalid_scope",
                "a patient is granted patient/ scopes only",
                flow["req"]["state"],
            )
            return self._step(fid, flow, "redirect", location=location)
        claims: dict[str, Any] = {"fhirUser": f"Patient/{own}"}
        context: dict[str, Any] = {"patient": patient, "need_patient_banner": False}
        if represented:
            if represented.get("related"):  # the RelatedPerson (mandate) naming him
                claims["fhirUser"] = f"RelatedPerson/{represented['related']}"
            claims["representative"] = {
                "kind": represented["kind"],
                "for": f"Patient/{patient}",
                "self": f"Patient/{own}",
                "valid_until": represented["until"],
            }
            context["need_patient_banner"] = True
        grant = Grant(
            str(flow["req"]["cid"]),
            str(account["id"]),
            tuple(scopes),
            claims,
            context,
            flow["req"].get("nonce"),
            int(self.clock()),
        )
        return self._finish(fid, raw, flow, grant)

    # --- the code ----------------------------------------------------------------------------
    def _finish(self, fid: str, raw: str, flow: Mapping[str, Any], grant: Grant) -> Step:
        self._save(fid, raw, None)  # the flow is over: no form of it works any more
        req = flow["req"]
        code = self.tokens.issue_code(grant, req["ru"], req["cc"])
        sep = "&" if "?" in req["ru"] else "?"
        location = f"{req['ru']}{sep}{urlencode({'code': code, 'state': req['state']})}"
        return self._step(fid, flow, "redirect", location=location)


def _context_of(scope: str) -> str | None:
    parsed = Scope.parse(scope)
    return parsed.context if parsed is not None else None


def _strip(url: str) -> str:
    return url.rstrip("/")


def _with_query(uri: str, error: str, description: str, state: str) -> str:
    query = {"error": error, "error_description": description}
    if state:
        query["state"] = state
    return f"{uri}{'&' if '?' in uri else '?'}{urlencode(query)}"


def _activity_label(activity: Any) -> str:
    name = activity.name or activity.idnst or activity.rass_id or "structure sans nom"
    role = activity.role or activity.profession or "rôle non précisé"
    return f"{name} — {role}"
