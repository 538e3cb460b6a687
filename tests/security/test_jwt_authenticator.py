"""JwtAuthenticator: every way a bearer token is refused, and the one way it is accepted."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc.jwk import ECKey, RSAKey

from maison.fhir.errors import Category, FhirError
from maison.security.jwks import StaticJwks, VerifyingKey
from maison.security.tokens import JwtAuthenticator

ISSUER = "https://idp.example.org/realms/maison"
AUDIENCE = "https://maison.example.org/fhir"
EXP = datetime(2026, 11, 26, 12, tzinfo=UTC).timestamp()  # 2026-11-26T12:00:00Z
NOW = EXP - 600

EC_KEY = ec.generate_private_key(ec.SECP256R1())
EC_KEY_384 = ec.generate_private_key(ec.SECP384R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_EC_KEY = ec.generate_private_key(ec.SECP256R1())


def _jwk(key: Any, kid: str, **extra: str) -> dict[str, Any]:
    wrapper = ECKey if isinstance(key, ec.EllipticCurvePublicKey) else RSAKey
    return {**wrapper.import_key(key).as_dict(private=False), "kid": kid, **extra}


JWKS = {
    "keys": [
        _jwk(EC_KEY.public_key(), "ec-1"),
        _jwk(EC_KEY_384.public_key(), "ec-384"),
        _jwk(RSA_KEY.public_key(), "rsa-1"),
        _jwk(RSA_KEY.public_key(), "rsa-pinned", alg="RS256"),
        {"kty": "oct", "k": "c2VjcmV0", "kid": "oct-1"},  # never usable
    ]
}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(header: dict[str, Any], claims: Any, key: Any) -> str:
    """A compact JWS signed with whatever the header says, valid or not."""
    signing_input = f"{b64(orjson.dumps(header))}.{b64(orjson.dumps(claims))}".encode()
    alg = header.get("alg", "")
    if key is None:
        sig = b""
    elif isinstance(key, bytes):
        sig = hmac.new(key, signing_input, hashlib.sha256).digest()
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        digest = hashes.SHA384() if alg == "ES384" else hashes.SHA256()
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(digest)))
        size = (key.curve.key_size + 7) // 8
        sig = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    elif alg.startswith("PS"):
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        sig = key.sign(signing_input, pss, hashes.SHA256())
    else:
        sig = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input.decode()}.{b64(sig)}"


def claims(**changes: Any) -> dict[str, Any]:
    base = {
        "iss": ISSUER,
        "sub": "practitioner-42",
        "aud": AUDIENCE,
        "exp": EXP,
        "iat": NOW - 60,
        "scope": "openid user/Observation.rs patient/*.read launch/patient",
        "client_id": "app-1",
        "patient": "pat-7",
        "fhirUser": "Practitioner/42",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def token(claim_changes: dict[str, Any] | None = None, **header: Any) -> str:
    hdr = {"alg": "ES256", "kid": "ec-1", "typ": "at+jwt", **header}
    return sign(hdr, claims(**(claim_changes or {})), EC_KEY)


@pytest.fixture(scope="module")
def auth() -> JwtAuthenticator:
    return JwtAuthenticator(ISSUER, AUDIENCE, StaticJwks(JWKS))


def refused(auth: JwtAuthenticator, header: str | None, now: float = NOW) -> str:
    with pytest.raises(FhirError) as caught:
        auth.authenticate(header, now=now)
    assert caught.value.category is Category.UNAUTHORIZED
    message = caught.value.message
    if header:
        for part in header.removeprefix("Bearer ").split("."):
            if len(part) > 8:
                assert part not in message, "the token must never be echoed"
    return message


def test_valid_es256_token_gives_the_principal(auth: JwtAuthenticator) -> None:
    p = auth.authenticate(f"Bearer {token()}", now=NOW)
    assert (p.subject, p.issuer, p.client_id, p.patient, p.fhir_user) == (
        "practitioner-42",
        ISSUER,
        "app-1",
        "pat-7",
        "Practitioner/42",
    )
    assert sorted(map(str, p.scopes)) == ["patient/*.read", "user/Observation.rs"]
    assert p.other_scopes == {"openid", "launch/patient"}
    assert p.claims["aud"] == AUDIENCE


@pytest.mark.parametrize(
    ("alg", "kid", "key"),
    [
        ("RS256", "rsa-1", RSA_KEY),
        ("RS256", "rsa-pinned", RSA_KEY),
        ("PS256", "rsa-1", RSA_KEY),
        ("ES384", "ec-384", EC_KEY_384),
    ],
)
def test_other_asymmetric_algorithms_are_accepted(
    auth: JwtAuthenticator, alg: str, kid: str, key: Any
) -> None:
    jws = sign({"alg": alg, "kid": kid}, claims(), key)
    assert auth.authenticate(f"Bearer {jws}", now=NOW).subject == "practitioner-42"


def test_scheme_is_case_insensitive_and_audience_list_is_searched(auth: JwtAuthenticator) -> None:
    jws = token({"aud": ["https://other.example.org", AUDIENCE]})
    assert auth.authenticate(f"bearer  {jws} ", now=NOW).subject == "practitioner-42"


def test_expiry_honours_the_leeway(auth: JwtAuthenticator) -> None:
    header = f"Bearer {token()}"
    assert auth.authenticate(header, now=EXP + 29).subject
    assert refused(auth, header, now=EXP + 30) == "token expired at 2026-11-26T12:00:00Z"


def test_not_yet_valid_and_issued_in_the_future(auth: JwtAuthenticator) -> None:
    assert auth.authenticate(f"Bearer {token({'nbf': NOW + 20})}", now=NOW)
    message = refused(auth, f"Bearer {token({'nbf': EXP - 300})}")
    assert message == "token not valid before 2026-11-26T11:55:00Z"
    assert refused(auth, f"Bearer {token({'iat': NOW + 31})}").startswith(
        "token issued in the future"
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"exp": None}, "token has no expiry (exp claim)"),
        ({"exp": "2026-11-26"}, "exp claim is not a NumericDate"),
        ({"exp": True}, "exp claim is not a NumericDate"),
        ({"nbf": [1]}, "nbf claim is not a NumericDate"),
        ({"iss": ISSUER + "/"}, "issuer mismatch"),
        ({"iss": None}, "issuer mismatch"),
        ({"aud": "https://other.example.org"}, "audience mismatch"),
        ({"aud": [1, "https://other.example.org"]}, "audience mismatch"),
        ({"aud": None}, "audience mismatch"),
        ({"sub": None}, "token has no subject (sub claim)"),
        ({"sub": ""}, "token has no subject (sub claim)"),
    ],
)
def test_bad_claims_are_refused(
    auth: JwtAuthenticator, changes: dict[str, Any], message: str
) -> None:
    assert refused(auth, f"Bearer {token(changes)}") == message


@pytest.mark.parametrize(
    ("header", "key", "message"),
    [
        ({"kid": "ec-9"}, EC_KEY, "unknown signing key"),
        ({"kid": None}, EC_KEY, "unknown signing key"),  # several keys: a kid is needed
        ({"kid": 7}, EC_KEY, "malformed token header: kid must be a string"),
        ({"kid": "oct-1", "alg": "ES256"}, EC_KEY, "unknown signing key"),
        ({"kid": "ec-1"}, OTHER_EC_KEY, "invalid token signature"),
        # the key type decides the algorithm, never the token
        ({"kid": "ec-1", "alg": "RS256"}, RSA_KEY, "unknown signing key"),
        ({"kid": "ec-1", "alg": "ES384"}, EC_KEY_384, "unknown signing key"),
        ({"kid": "rsa-pinned", "alg": "PS256"}, RSA_KEY, "unknown signing key"),
        ({"crit": ["exp"]}, EC_KEY, "token uses unsupported critical header parameters"),
    ],
)
def test_key_problems_are_refused(
    auth: JwtAuthenticator, header: dict[str, Any], key: Any, message: str
) -> None:
    hdr = {k: v for k, v in {"alg": "ES256", "kid": "ec-1", **header}.items() if v is not None}
    assert refused(auth, f"Bearer {sign(hdr, claims(), key)}") == message


def test_kid_may_be_omitted_when_the_set_has_one_key() -> None:
    single = JwtAuthenticator(ISSUER, AUDIENCE, StaticJwks({"keys": [JWKS["keys"][0]]}))
    jws = sign({"alg": "ES256"}, claims(), EC_KEY)
    assert single.authenticate(f"Bearer {jws}", now=NOW).subject == "practitioner-42"


def test_tampered_payload_is_refused(auth: JwtAuthenticator) -> None:
    head, _, sig = token().split(".")
    forged = b64(orjson.dumps(claims(sub="admin")))
    assert refused(auth, f"Bearer {head}.{forged}.{sig}") == "invalid token signature"
    head2 = b64(orjson.dumps({"alg": "ES256", "kid": "ec-1", "typ": "JWT"}))
    assert refused(auth, f"Bearer {head2}.{token().split('.')[1]}.{sig}") == (
        "invalid token signature"
    )


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_is_refused(auth: JwtAuthenticator, alg: str) -> None:
    for sig in ("", "e30"):
        jws = sign({"alg": alg, "kid": "ec-1"}, claims(), None)
        jws = jws + sig
        assert refused(auth, f"Bearer {jws}") == f"signing algorithm '{alg}' is not allowed"


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_signed_with_the_public_key_is_refused(auth: JwtAuthenticator, alg: str) -> None:
    # algorithm confusion (RFC 8725 §2.1): the attacker knows the public key
    public = RSA_KEY.public_key()
    secrets = [
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1),
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        orjson.dumps(JWKS["keys"][2]),
    ]
    for secret in secrets:
        jws = sign({"alg": alg, "kid": "rsa-1"}, claims(), secret)
        assert refused(auth, f"Bearer {jws}") == f"signing algorithm '{alg}' is not allowed"


@pytest.mark.parametrize("algorithms", [["none"], ["HS256"], ["RS256", "HS512"], ["EdDSA"]])
def test_unsafe_algorithms_cannot_be_configured(algorithms: list[str]) -> None:
    with pytest.raises(ValueError, match="unsupported or unsafe"):
        JwtAuthenticator(ISSUER, AUDIENCE, StaticJwks(JWKS), algorithms=algorithms)


def test_algorithm_allow_list_is_honoured() -> None:
    rs_only = JwtAuthenticator(ISSUER, AUDIENCE, StaticJwks(JWKS), algorithms=["RS256"])
    assert refused(rs_only, f"Bearer {token()}") == "signing algorithm 'ES256' is not allowed"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "missing bearer token"),
        ("", "missing bearer token"),
        ("   ", "missing bearer token"),
        ("Basic dXNlcjpwYXNz", "authorization scheme must be Bearer"),
        ("eyJhbGciOiJFUzI1NiJ9.e30.c2ln", "authorization scheme must be Bearer"),
        ("Bearer", "malformed bearer token"),
        ("Bearer ", "malformed bearer token"),
        ("Bearer a b", "malformed bearer token"),
        ("Bearer tok\u00e9n", "malformed bearer token"),
        ("Bearer garbage", "malformed token: expected a signed JWT (three base64url parts)"),
        ("Bearer a.b.c.d.e", "malformed token: expected a signed JWT (three base64url parts)"),
        ("Bearer junk+/.junk.junk", "malformed token header"),
        ("Bearer abcde.e30.c2ln", "malformed token header"),  # 5 chars: not base64
        ("Bearer YWJj.e30.c2ln", "malformed token header"),  # "abc": not JSON
        (f"Bearer {b64(b'[1]')}.e30.c2ln", "malformed token header: not a JSON object"),
        (f"Bearer {b64(b'{}')}.e30.c2ln", "signing algorithm '?' is not allowed"),
        ("Bearer " + "a" * 20000, "authorization header too large"),
    ],
)
def test_malformed_headers_are_refused(
    auth: JwtAuthenticator, header: str | None, message: str
) -> None:
    assert refused(auth, header) == message


def test_malformed_signature_and_payload_are_refused(auth: JwtAuthenticator) -> None:
    head, payload, _ = token().split(".")
    assert refused(auth, f"Bearer {head}.{payload}.a") == "malformed token signature"
    # "psychic signature" (r = s = 0, CVE-2022-21449) and wrong lengths never verify
    for sig in (bytes(64), bytes(63), bytes(65), b""):
        assert refused(auth, f"Bearer {head}.{payload}.{b64(sig)}") == "invalid token signature"
    # a well-signed token whose payload is not an object
    jws = sign({"alg": "ES256", "kid": "ec-1"}, ["not", "an", "object"], EC_KEY)
    assert refused(auth, f"Bearer {jws}") == "malformed token payload: not a JSON object"


WEAK_N = (
    rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key().public_numbers().n
)
EC_JWK = _jwk(EC_KEY.public_key(), "ec")


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "RSA", "kid": "weak", "n": b64(WEAK_N.to_bytes(128, "big")), "e": "AQAB"},
        {**EC_JWK, "use": "enc"},
        {**EC_JWK, "key_ops": ["encrypt"]},
        {**EC_JWK, "crv": "secp256k1"},
        {"kty": "oct", "k": "c2VjcmV0"},
        {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
    ],
)
def test_keys_that_cannot_verify_are_skipped(jwk: dict[str, Any]) -> None:
    assert VerifyingKey.from_jwk(jwk) is None
    with pytest.raises(ValueError, match="no usable signing key"):
        StaticJwks({"keys": [jwk, "not a key"]})


@pytest.mark.parametrize(
    "jwk",
    [
        {**EC_JWK, "y": EC_JWK["x"]},  # not on the curve
        {**EC_JWK, "x": "AAAA"},  # short coordinate
        {**EC_JWK, "x": "!!"},  # not base64url
        {"kty": "RSA", "n": "AQAB"},  # no exponent
    ],
)
def test_malformed_keys_raise_and_are_skipped_in_a_set(jwk: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        VerifyingKey.from_jwk(jwk)
    source = StaticJwks({"keys": [jwk, EC_JWK]})
    assert [k.kid for k in source.keys_for("ec", NOW)] == ["ec"]
    assert VerifyingKey.from_jwk({**EC_JWK, "key_ops": ["verify"], "use": "sig"}) is not None


_B64_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=10,
)
_segment = st.one_of(
    st.text(alphabet=_B64_CHARS, max_size=60),
    _json.map(lambda v: b64(orjson.dumps(v))),
    st.fixed_dictionaries(
        {"alg": st.sampled_from(["ES256", "RS256", "none", "HS256"]), "kid": _json}
    ).map(lambda v: b64(orjson.dumps(v))),
)
_headers = st.one_of(
    st.none(),
    st.text(),
    st.text().map(lambda t: "Bearer " + t),
    st.lists(_segment, min_size=1, max_size=5).map(lambda parts: "Bearer " + ".".join(parts)),
)


@settings(max_examples=400, deadline=None)
@given(_headers)
def test_random_headers_only_ever_give_unauthorized(header: str | None) -> None:
    auth = JwtAuthenticator(ISSUER, AUDIENCE, StaticJwks(JWKS))
    with pytest.raises(FhirError) as caught:
        auth.authenticate(header, now=NOW)
    assert caught.value.category is Category.UNAUTHORIZED
