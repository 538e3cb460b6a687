"""LocalIssuer: key file handling, JWKS, discovery document and minted tokens."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from pathlib import Path

import orjson
import pytest
from joserfc.jwk import ECKey

from maison.fhir.errors import Category, FhirError
from maison.security import issuer as issuer_module
from maison.security.issuer import KEY_FILE, LocalIssuer

ISSUER = "http://localhost:8080"
AUDIENCE = "http://localhost:8080/fhir"
T0 = 1_800_000_000.0


def test_key_file_is_created_private_and_reloaded(tmp_path: Path) -> None:
    folder = tmp_path / "state" / "keys"
    first = LocalIssuer.load_or_create(folder, ISSUER)
    path = folder / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert orjson.loads(path.read_bytes())["d"]  # the private key is in the file
    assert [p.name for p in folder.iterdir()] == [KEY_FILE]  # no temporary file left

    again = LocalIssuer.load_or_create(folder, ISSUER)
    assert again.kid == first.kid
    assert again.jwks() == first.jwks()
    token = first.mint("dev", ["user/*.cruds"], AUDIENCE, now=T0)
    assert again.authenticator(AUDIENCE).authenticate(f"Bearer {token}", now=T0).subject == "dev"


def test_a_readable_key_file_is_refused(tmp_path: Path) -> None:
    LocalIssuer.load_or_create(tmp_path, ISSUER)
    os.chmod(tmp_path / KEY_FILE, 0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        LocalIssuer.load_or_create(tmp_path, ISSUER)


def test_losing_the_creation_race_keeps_the_winners_key(tmp_path: Path) -> None:
    issuer = LocalIssuer.load_or_create(tmp_path, ISSUER)
    before = (tmp_path / KEY_FILE).read_bytes()
    issuer_module._create_key_file(tmp_path / KEY_FILE)  # a second process, too late
    assert (tmp_path / KEY_FILE).read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [KEY_FILE]
    assert LocalIssuer.load_or_create(tmp_path, ISSUER).kid == issuer.kid


def test_only_p256_private_keys_are_accepted() -> None:
    with pytest.raises(ValueError, match="P-256"):
        LocalIssuer(ECKey.generate_key("P-384"), ISSUER)
    public = ECKey.import_key(ECKey.generate_key("P-256").as_dict(private=False))
    with pytest.raises(ValueError, match="private"):
        LocalIssuer(public, ISSUER)


def test_jwks_is_public_with_an_rfc7638_kid(tmp_path: Path) -> None:
    issuer = LocalIssuer.load_or_create(tmp_path, ISSUER)
    (jwk,) = issuer.jwks()["keys"]
    assert "d" not in jwk
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("EC", "P-256", "ES256", "sig")
    canonical = orjson.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")})  # RFC 7638 §3.2
    digest = base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()
    assert jwk["kid"] == digest == issuer.kid


def test_openid_configuration(tmp_path: Path) -> None:
    config = LocalIssuer.load_or_create(tmp_path, ISSUER).openid_configuration(ISSUER + "/")
    assert config["issuer"] == ISSUER
    assert config["jwks_uri"] == f"{ISSUER}/.well-known/jwks.json"
    assert config["id_token_signing_alg_values_supported"] == ["ES256"]
    assert {"openid", "patient/*.rs", "user/*.cruds"} <= set(config["scopes_supported"])
    # one token endpoint: SMART's grants and the exchange of PSC tokens (RFC 8693)
    assert config["token_endpoint"] == f"{ISSUER}/auth/token"
    assert config["authorization_endpoint"] == f"{ISSUER}/auth/authorize"
    assert config["grant_types_supported"] == [
        "authorization_code",
        "refresh_token",
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:token-exchange",
    ]
    assert config["code_challenge_methods_supported"] == ["S256"]


def test_minted_tokens_carry_the_claims_and_expire(tmp_path: Path) -> None:
    issuer = LocalIssuer.load_or_create(tmp_path, ISSUER)
    token = issuer.mint(
        "practitioner-1",
        ["launch/patient", "patient/*.rs"],
        AUDIENCE,
        lifetime_seconds=600,
        extra_claims={"patient": "p-9", "fhirUser": "Practitioner/1", "client_id": "cli"},
        now=T0,
    )
    header = orjson.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"alg": "ES256", "kid": issuer.kid, "typ": "at+jwt"}
    auth = issuer.authenticator(AUDIENCE)
    p = auth.authenticate(f"Bearer {token}", now=T0 + 599)
    assert (p.subject, p.issuer, p.patient, p.fhir_user, p.client_id) == (
        "practitioner-1",
        ISSUER,
        "p-9",
        "Practitioner/1",
        "cli",
    )
    assert p.compartment() == ("Patient", "p-9")
    assert p.claims["exp"] - p.claims["iat"] == 600
    assert p.claims["jti"]
    with pytest.raises(FhirError) as caught:
        auth.authenticate(f"Bearer {token}", now=T0 + 630)
    assert caught.value.category is Category.UNAUTHORIZED
    other = LocalIssuer.load_or_create(tmp_path / "other", ISSUER)
    with pytest.raises(FhirError, match="unknown signing key"):
        other.authenticator(AUDIENCE).authenticate(f"Bearer {token}", now=T0)


@pytest.mark.parametrize("claim", ["iss", "exp", "scope", "sub"])
def test_extra_claims_cannot_override_reserved_ones(tmp_path: Path, claim: str) -> None:
    issuer = LocalIssuer.load_or_create(tmp_path, ISSUER)
    with pytest.raises(ValueError, match=claim):
        issuer.mint("x", [], AUDIENCE, extra_claims={claim: "forged"})
