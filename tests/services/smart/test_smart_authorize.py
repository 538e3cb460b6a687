"""The SMART authorization endpoint and its sign-in steps, with a fake Pro Santé Connect and
fake patient accounts: https://hl7.org/fhir/smart-app-launch/app-launch.html."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
from joserfc import jwt
from smart_fakes import (
    FHIR_BASE,
    AccountError,
    Accounts,
    Clock,
    FakeParty,
    Records,
    issuer,
    userinfo,
)

from maison.security.professional import ProfessionalContext, ProfessionalContextError
from maison.services.psc.provider import AuthorizeError, s256
from maison.services.smart.authorize import Authorizer, FlowError, Step
from maison.services.smart.clients import ClientRegistry
from maison.services.smart.grants import Tokens
from maison.services.smart.launch import create_launch

REDIRECT = "https://app.example/cb"
APP = {
    "app": {
        "redirect_uris": [REDIRECT],
        "scope": "openid fhirUser launch launch/patient offline_access patient/*.rs "
        "user/*.rs system/*.rs",
        "jwks": {"keys": []},
    }
}
BROWSER = "browser-1"
INS_KNOWN = "180000000000001"


class World:
    def __init__(self, activities: int = 1, refuse: str | None = None) -> None:
        self.clock = Clock()
        self.records = Records()
        self.tokens = Tokens(issuer(), FHIR_BASE, self.records, self.clock)
        self.party = FakeParty(userinfo(activities))
        self.checked: list[ProfessionalContext] = []

        def check(context: ProfessionalContext) -> None:
            if refuse:
                raise ProfessionalContextError(refuse, "inactive")
            self.checked.append(context)

        self.auth = Authorizer(
            clients=ClientRegistry(self.records, orjson.dumps(APP).decode()),
            tokens=self.tokens,
            records=self.records,
            fhir_base=FHIR_BASE,
            psc=lambda: self.party,  # type: ignore[arg-type, return-value]
            check_professional=check,
            find_patient=lambda ins: "p-42" if ins == INS_KNOWN else None,
            patient_exists=lambda pid: pid in {"p-parent", "p-child", "p-42", "p-alone"},
            accounts=Accounts,
            account_error=AccountError,
            clock=self.clock,
        )
        self.verifier = secrets.token_urlsafe(48)

    def params(self, **over: str) -> dict[str, str]:
        params = {
            "response_type": "code",
            "client_id": "app",
            "redirect_uri": REDIRECT,
            "scope": "openid fhirUser launch/patient offline_access patient/*.rs user/*.rs",
            "state": "st-1",
            "aud": FHIR_BASE,
            "code_challenge": s256(self.verifier),
            "code_challenge_method": "S256",
            "nonce": "n-1",
            **over,
        }
        return {k: v for k, v in params.items() if v != "-"}

    def psc_back(self, step: Step) -> Step:
        assert step.location is not None and step.location.startswith("https://psc.test/")
        state = parse_qs(urlsplit(step.location).query)["state"][0]
        return self.auth.psc_callback({"state": state, "code": "c"}, BROWSER)

    def redeem(self, step: Step) -> dict[str, Any]:
        assert step.location is not None and step.location.startswith(REDIRECT + "?"), step
        query = parse_qs(urlsplit(step.location).query)
        assert query["state"] == ["st-1"]
        client = self.auth.clients.get("app")
        assert client is not None
        form = {"code": query["code"][0], "redirect_uri": REDIRECT, "code_verifier": self.verifier}
        answer = self.tokens.redeem_code(client, form)
        answer["claims"] = jwt.decode(answer["access_token"], self.tokens.issuer._key).claims
        return answer


def test_errors_before_the_redirect_uri_is_trusted_are_pages() -> None:
    w = World()
    for over in (
        {"client_id": "nobody"},
        {"redirect_uri": "https://evil.example/cb"},
        {"redirect_uri": REDIRECT + "/x"},
        {"redirect_uri": "-"},
    ):
        with pytest.raises(AuthorizeError) as caught:
            w.auth.start(w.params(**over), BROWSER)
        assert caught.value.redirect is None


@pytest.mark.parametrize(
    ("over", "error"),
    [
        ({"aud": "https://other.example/fhir"}, "invalid_request"),
        ({"aud": "-"}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": "-"}, "invalid_request"),
        ({"state": "-"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "system/*.cruds rocket"}, "invalid_scope"),
        ({"launch": "x" * 32}, "invalid_request"),
    ],
)
def test_bad_requests_go_back_to_the_app(over: dict[str, str], error: str) -> None:
    w = World()
    with pytest.raises(AuthorizeError) as caught:
        w.auth.start(w.params(**over), BROWSER)
    assert caught.value.redirect is not None and caught.value.redirect.startswith(REDIRECT + "?")
    query = parse_qs(urlsplit(caught.value.redirect).query)
    assert query["error"] == [error] and "code" not in query


def test_professional_standalone_with_activity_choice_and_patient_by_ins() -> None:
    w = World(activities=2)
    step = w.auth.start(w.params(), BROWSER)
    assert step.page == "choose"
    step = w.auth.choose(step.flow, BROWSER, "professional")
    step = w.psc_back(step)
    assert step.page == "activity"
    assert [label for _v, label in step.choices][1].startswith("Structure 1")
    with pytest.raises(FlowError):  # another browser cannot use the form
        w.auth.choose_activity(step.flow, "other-browser", "1")
    step = w.auth.choose_activity(step.flow, BROWSER, "1")
    assert step.page == "pick_patient" and w.checked[0].activity.index == 1
    again = w.auth.pick_patient(step.flow, BROWSER, "280000000000002")
    assert again.page == "pick_patient" and again.status == 404
    done = w.auth.pick_patient(step.flow, BROWSER, "1 80 00 00 00 00 00 01")
    with pytest.raises(FlowError):  # the flow is over
        w.auth.pick_patient(step.flow, BROWSER, INS_KNOWN)
    answer = w.redeem(done)
    claims = answer["claims"]
    assert answer["patient"] == "p-42" and answer["need_patient_banner"] is True
    assert claims["fhirUser"].startswith("Practitioner/") and claims["patient"] == "p-42"
    assert set(answer["scope"].split()) == {
        "openid",
        "fhirUser",
        "launch/patient",
        "offline_access",
        "patient/*.rs",
        "user/*.rs",
    }
    assert claims["professional"]["activity"] == 1 and "id_token" in answer


def test_professional_without_patient_context_loses_patient_scopes() -> None:
    w = World()
    step = w.auth.start(w.params(scope="openid user/*.rs patient/*.rs"), BROWSER)
    done = w.psc_back(w.auth.choose(step.flow, BROWSER, "professional"))
    answer = w.redeem(done)
    assert answer["scope"] == "openid user/*.rs" and "patient" not in answer


def test_ehr_launch_goes_straight_to_psc_and_binds_the_professional() -> None:
    w = World()
    national = "ANS20231122132732"
    launch = create_launch(w.records, "p-42", "enc-1", national, w.clock)
    step = w.auth.start(w.params(scope="launch patient/*.rs", launch=launch), BROWSER)
    answer = w.redeem(w.psc_back(step))
    assert (answer["patient"], answer["encounter"]) == ("p-42", "enc-1")
    with pytest.raises(AuthorizeError, match="launch"):  # single use
        w.auth.start(w.params(launch=launch), BROWSER)
    foreign = create_launch(w.records, "p-42", None, "899999999999", w.clock)
    step = w.psc_back(w.auth.start(w.params(launch=foreign), BROWSER))
    assert step.page == "refused" and "autre professionnel" in step.message


def test_a_professional_refused_by_the_annuaire_gets_no_code() -> None:
    w = World(refuse="no longer active")
    step = w.psc_back(
        w.auth.choose(w.auth.start(w.params(), BROWSER).flow, BROWSER, "professional")
    )
    assert step.page == "refused" and step.location is None and step.status == 403
    assert step.back is not None and "error=access_denied" in step.back


def test_patient_signs_in_and_acts_for_a_represented_child() -> None:
    w = World()
    flow = w.auth.start(w.params(), BROWSER).flow
    step = w.auth.choose(flow, BROWSER, "patient")
    assert step.page == "patient"
    wrong = w.auth.patient_sign_in(flow, BROWSER, INS_KNOWN, "bad", "123456")
    assert wrong.page == "patient" and wrong.status == 401 and "incorrect" in wrong.message
    step = w.auth.patient_sign_in(flow, BROWSER, INS_KNOWN, "pw", "123456")
    assert step.page == "represent"
    assert [v for v, _label in step.choices] == ["own", "0"]  # the expired mandate is gone
    answer = w.redeem(w.auth.represent(flow, BROWSER, "0"))
    claims = answer["claims"]
    assert answer["patient"] == "p-child" and claims["sub"] == "acc-1"
    assert claims["fhirUser"] == "RelatedPerson/rp-1"
    assert claims["representative"] == {
        "kind": "parent",
        "for": "Patient/p-child",
        "self": "Patient/p-parent",
        "valid_until": None,
    }
    assert answer["scope"] == "openid fhirUser launch/patient offline_access patient/*.rs"


def test_patient_own_record() -> None:
    w = World()
    flow = w.auth.start(w.params(), BROWSER).flow
    w.auth.choose(flow, BROWSER, "patient")
    answer = w.redeem(w.auth.patient_sign_in(flow, BROWSER, "280000000000002", "pw", "123456"))
    assert answer["patient"] == "p-alone" and answer["claims"]["fhirUser"] == "Patient/p-alone"
    assert "representative" not in answer["claims"]


def test_patient_with_only_user_scopes_is_refused_and_cancel_goes_back() -> None:
    w = World()
    flow = w.auth.start(w.params(scope="user/*.rs"), BROWSER).flow
    w.auth.choose(flow, BROWSER, "patient")
    step = w.auth.patient_sign_in(flow, BROWSER, "280000000000002", "pw", "123456")
    assert step.location is not None and "error=invalid_scope" in step.location
    flow = w.auth.start(w.params(), BROWSER).flow
    step = w.auth.cancel(flow, BROWSER)
    assert step.location is not None and "error=access_denied" in step.location
    with pytest.raises(FlowError):
        w.auth.choose(flow, BROWSER, "patient")


def test_flows_expire() -> None:
    w = World()
    flow = w.auth.start(w.params(), BROWSER).flow
    w.clock.now += 601
    with pytest.raises(FlowError):
        w.auth.choose(flow, BROWSER, "patient")
