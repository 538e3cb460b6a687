"""`maison pki init|org|server|show` as an operator runs them (through Typer's test runner).

https://industriels.esante.gouv.fr/produits-et-services/igc-sante
"""

from __future__ import annotations

import stat
from pathlib import Path

from typer.testing import CliRunner

from maison.cli.pki import pki_app
from maison.security.pki import (
    ROOT_CERT,
    ROOT_KEY,
    load_certificates,
    organisation_of,
    verify_chain,
    x5t_s256,
)

runner = CliRunner()
FINESS = "750712184"
SIRET = "26750045200011"


def _invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(pki_app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_init_then_org_gives_a_chain_that_verifies(tmp_path: Path) -> None:
    folder = tmp_path / "pki"
    code, text = _invoke("init", "--dir", str(folder))
    assert code == 0, text
    assert "AC RACINE maison TEST" in text and "AC ORGANISATIONS maison TEST" in text
    assert stat.S_IMODE((folder / ROOT_KEY).stat().st_mode) == 0o600

    code, text = _invoke(
        "org", "Clinique du Test", "--finess", FINESS, "--days", "30", "--dir", str(folder)
    )
    assert code == 0, text
    chain_file = folder / f"org-1{FINESS}-chain.pem"
    key_file = folder / f"org-1{FINESS}.key"
    assert str(chain_file) in text and str(key_file) in text
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    leaf, *intermediates = load_certificates(chain_file)
    verify_chain(leaf, intermediates, load_certificates(folder / ROOT_CERT)[0])
    assert organisation_of(leaf).value == FINESS
    assert f"x5t#S256:    {x5t_s256(leaf)}" in text
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert 30 <= lifetime.days <= 31


def test_init_refuses_to_replace_a_ca_unless_forced(tmp_path: Path) -> None:
    folder = tmp_path / "pki"
    assert _invoke("init", "--dir", str(folder))[0] == 0
    root = (folder / ROOT_CERT).read_bytes()
    code, text = _invoke("init", "--dir", str(folder))
    assert code == 1
    assert "already exists" in text and "--force" in text
    assert (folder / ROOT_CERT).read_bytes() == root
    assert _invoke("init", "--dir", str(folder), "--force")[0] == 0
    assert (folder / ROOT_CERT).read_bytes() != root


def test_default_folder_is_the_state_folder(tmp_path: Path) -> None:
    state = tmp_path / "state"
    code, text = _invoke("init", "--state", str(state), "--data", "postgresql://x@y/z")
    assert code == 0, text
    assert (state / "pki" / ROOT_CERT).exists()
    code, text = _invoke("org", "Cabinet Test", "--siret", SIRET, "--state", str(state))
    assert code == 0, text
    assert (state / "pki" / f"org-3{SIRET}.pem").exists()


def test_org_needs_one_valid_identifier_and_a_ca(tmp_path: Path) -> None:
    folder = tmp_path / "pki"
    code, text = _invoke("org", "Test", "--finess", FINESS, "--dir", str(folder))
    assert code == 1 and "maison pki init" in text
    assert _invoke("init", "--dir", str(folder))[0] == 0
    code, text = _invoke("org", "Test", "--dir", str(folder))
    assert code == 1 and "exactly one" in text
    code, text = _invoke("org", "Test", "--finess", "123", "--dir", str(folder))
    assert code == 1 and "FINESS" in text
    assert _invoke("org", "Test", "--finess", FINESS, "--dir", str(folder))[0] == 0
    code, text = _invoke("org", "Test", "--finess", FINESS, "--dir", str(folder))
    assert code == 1 and "already exists" in text
    assert _invoke("org", "Test", "--finess", FINESS, "--dir", str(folder), "--force")[0] == 0


def test_server_then_show(tmp_path: Path) -> None:
    folder = tmp_path / "pki"
    assert _invoke("init", "--dir", str(folder))[0] == 0
    code, text = _invoke(
        "server", "localhost", "api.test", "--ip", "127.0.0.1", "--dir", str(folder)
    )
    assert code == 0, text
    code, text = _invoke("show", str(folder / "server-localhost.pem"), "--dir", str(folder))
    assert code == 0, text
    assert "subject:      CN=localhost,OU=SERVEUR TEST,O=maison TEST,C=FR" in text
    assert "ok for server authentication" in text
    assert "organisation: none" in text

    assert _invoke("org", "Hôpital Test", "--finess", FINESS, "--dir", str(folder))[0] == 0
    chain = folder / f"org-1{FINESS}-chain.pem"
    code, text = _invoke("show", str(chain), "--dir", str(folder))
    assert code == 0, text
    assert "issuer:       CN=AC ORGANISATIONS maison TEST" in text
    assert f"FINESS {FINESS} (idNat_Struct 1{FINESS})" in text
    assert f"x5t#S256:     {x5t_s256(load_certificates(chain)[0])}" in text
    assert "ok for client authentication" in text
    assert "not after:" in text

    other = tmp_path / "other"
    assert _invoke("init", "--dir", str(other))[0] == 0
    code, text = _invoke("show", str(chain), "--dir", str(other))
    assert code == 0 and "refused:" in text


def test_show_refuses_a_file_that_is_no_certificate(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    code, text = _invoke("show", str(junk), "--dir", str(tmp_path))
    assert code == 1 and "not a certificate" in text
