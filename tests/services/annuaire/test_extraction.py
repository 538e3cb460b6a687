"""Annuaire Santé extraction reader: layout, row checks, encodings, zips, streaming."""

from __future__ import annotations

import collections
import inspect
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum import luhn
from stdnum.fr import siret as stdnum_siret

from maison.services.annuaire.extraction import (
    ACTIVITE_COLUMNS,
    ExtractionError,
    Row,
    RowError,
    finess_problem,
    read_activities,
    rpps_problem,
    siren_problem,
    siret_problem,
)
from support import SHARED

HEADER_FILE = SHARED / "domain" / "data" / "annuaire" / "PS_LibreAcces_Personne_activite.header.txt"
HEADER = "|".join(ACTIVITE_COLUMNS) + "|"

RPPS = "10000001015"  # 1000000101 + Luhn key 5
FINESS = "750712184"  # AP-HP: a real, public FINESS number (Luhn key 4)
SIRET = "73282932000074"  # python-stdnum's own example
SIREN = SIRET[:9]


def _values(**changes: str) -> dict[str, str]:
    """A valid row with every column filled (every kind of cell), then ``changes``."""
    values = {
        "Type d'identifiant PP": "8",
        "Identifiant PP": RPPS,
        "Identification nationale PP": "8" + RPPS,
        "Code civilité d'exercice": "DR",
        "Libellé civilité exercice": "Docteur",
        "Code civilité": "MME",
        "Libellé civilité": "Madame",
        "Nom d'exercice": "LEFEVRE-D'ALMEIDA",
        "Prénom d'exercice": "Hélène",
        "Code profession": "10",
        "Libellé profession": "Médecin",
        "Code catégorie professionnelle": "C",
        "Libellé catégorie professionnelle": "Civil",
        "Code type savoir-faire": "S",
        "Libellé type savoir-faire": "Spécialité ordinale",
        "Code savoir-faire": "SM54",
        "Libellé savoir-faire": "Médecine générale (SM)",
        "Code mode exercice": "S",
        "Libellé mode exercice": "Salarié",
        "Numéro SIRET site": SIRET,
        "Numéro SIREN site": SIREN,
        "Numéro FINESS site": FINESS,
        "Numéro FINESS établissement juridique": "540002698",
        "Identifiant technique de la structure": "F75071218411022013",
        "Raison sociale site": "HOPITAL SAINT-JOSEPH",
        "Enseigne commerciale site": "CŒUR DE VILLE",
        "Complément destinataire (coord. structure)": "SERVICE DE CARDIOLOGIE",
        "Complément point géographique (coord. structure)": "BATIMENT B",
        "Numéro Voie (coord. structure)": "12",
        "Indice répétition voie (coord. Structure)": "B",
        "Code type de voie (coord. structure)": "R",
        "Libellé type de voie (coord. structure)": "Rue",
        "Libellé Voie (coord. structure)": "DE L'EGLISE",
        "Mention distribution (coord. structure)": "BP 12",
        "Bureau cedex (coord. structure)": "75015 PARIS CEDEX",
        "Code postal (coord. structure)": "75015",
        "Code commune (coord. structure)": "75115",
        "Libellé commune (coord. structure)": "PARIS",
        "Code pays (coord. structure)": "99000",
        "Libellé pays (coord. structure)": "France",
        "Téléphone (coord. structure)": "0199001234",
        "Téléphone 2 (coord. structure)": "0639981234",
        "Télécopie (coord. structure)": "0199004321",
        "Adresse e-mail (coord. structure)": "contact@example.org",
        "Code département (coord. structure)": "75",
        "Libellé département (coord. structure)": "Paris",
        "Ancien identifiant de la structure": "1" + FINESS,
        "Autorité d'enregistrement": "CNOM/CNOM/CNOM",
        "Code secteur d'activité": "SA01",
        "Libellé secteur d'activité": "Etablissement public de santé",
        "Code section tableau pharmaciens": "H",
        "Libellé section tableau pharmaciens": "Pharmacien des établissements de santé",
        "Code fonction": "FON-AU",
        "Libellé fonction": "Fonction non définie",
        "Code genre d'activité": "GENR01",
        "Libellé genre d'activité": "Activité standard",
    }
    assert tuple(values) == ACTIVITE_COLUMNS
    values.update(changes)
    return values


def _line(values: dict[str, str]) -> str:
    return "|".join(values[c] for c in ACTIVITE_COLUMNS) + "|"


def _file(
    tmp_path: Path, lines: list[str], *, encoding: str = "utf-8", name: str = "a.txt"
) -> Path:
    path = tmp_path / name
    path.write_bytes(("\n".join([HEADER, *lines]) + "\n").encode(encoding))
    return path


def _only(path: Path) -> Row | RowError:
    (result,) = list(read_activities(path))
    return result


# ----------------------------------------------------------------------------- layout


def test_the_column_constant_is_the_shared_header() -> None:
    text = HEADER_FILE.read_text(encoding="utf-8")
    assert text.rstrip("\r\n").endswith("|")
    assert tuple(text.rstrip("\r\n")[:-1].split("|")) == ACTIVITE_COLUMNS
    assert len(ACTIVITE_COLUMNS) == 56 == len(set(ACTIVITE_COLUMNS))


def test_the_shared_header_file_itself_reads_as_an_empty_extraction() -> None:
    assert list(read_activities(HEADER_FILE)) == []


def test_a_row_with_every_kind_of_cell(tmp_path: Path) -> None:
    values = _values()
    row = _only(_file(tmp_path, [_line(values)]))
    assert isinstance(row, Row)
    assert row.line == 2
    assert dict(row.values) == values
    assert row.rpps == RPPS
    assert row.idnps == row.person_key == "8" + RPPS
    assert row.profession_code == "10"
    assert (row.structure_key, row.structure_key_type) == (FINESS, "FINEG")
    with pytest.raises(TypeError):
        row.values["Nom d'exercice"] = "X"  # type: ignore[index]


def test_empty_cells_and_the_structure_key_fallbacks(tmp_path: Path) -> None:
    blank = {c: "" for c in ACTIVITE_COLUMNS[3:]}
    adeli = "751234567"
    lines = [
        _line(_values(**{**blank, "Code profession": "93", "Numéro SIRET site": SIRET})),
        _line(
            _values(
                **{
                    **blank,
                    "Code profession": "93",
                    "Identifiant technique de la structure": "R81311",
                }
            )
        ),
        _line(_values(**{**blank, "Code profession": "60"})),
        _line(
            _values(
                **{
                    **blank,
                    "Type d'identifiant PP": "0",
                    "Identifiant PP": adeli,
                    "Identification nationale PP": "0" + adeli,
                    "Code profession": "93",
                }
            )
        ),
    ]
    siret, technique, nothing, adeli_row = list(read_activities(_file(tmp_path, lines)))
    assert isinstance(siret, Row) and isinstance(technique, Row)
    assert isinstance(nothing, Row) and isinstance(adeli_row, Row)
    assert (siret.structure_key, siret.structure_key_type) == (SIRET, "SIRET")
    assert (technique.structure_key, technique.structure_key_type) == ("R81311", "INTRN")
    assert (nothing.structure_key, nothing.structure_key_type) == (None, None)
    assert nothing.values["Nom d'exercice"] == "" and len(nothing.values) == 56
    assert adeli_row.rpps is None
    assert adeli_row.idnps == "0" + adeli
    assert [r.line for r in (siret, technique, nothing, adeli_row)] == [2, 3, 4, 5]


# ----------------------------------------------------------------------------- bad rows


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"Identifiant PP": "10000001016", "Identification nationale PP": "810000001016"},
            "RPPS 10000001016 has an invalid check digit: 6, expected 5",
        ),
        (
            {"Identifiant PP": "1000000101", "Identification nationale PP": "81000000101"},
            "not 11 digits",
        ),
        (
            {"Identification nationale PP": "0" + RPPS},
            f"Identification nationale PP '0{RPPS}' is not Type d'identifiant PP + "
            f"Identifiant PP ('8{RPPS}')",
        ),
        ({"Code profession": "1"}, "Code profession '1' is not 2 digits"),
        ({"Code profession": "AB"}, "Code profession 'AB' is not 2 digits"),
        ({"Code profession": ""}, "Code profession '' is not 2 digits"),
        (
            {"Numéro SIRET site": "73282932000075", "Numéro SIREN site": ""},
            "SIRET 73282932000075 has an invalid check digit: 5, expected 4",
        ),
        ({"Numéro SIRET site": "7328293200007", "Numéro SIREN site": ""}, "is not 14 digits"),
        (
            {"Numéro SIRET site": "73282932100074", "Numéro SIREN site": ""},
            "SIRET 73282932100074: its SIREN 732829321 has an invalid check digit: 1, expected 0",
        ),
        ({"Numéro SIREN site": "552100554"}, "SIREN 552100554 is not the first 9 digits"),
        ({"Numéro SIREN site": "732829321"}, "SIREN 732829321 has an invalid check digit"),
        (
            {"Numéro FINESS site": "750712185"},
            "Numéro FINESS site: FINESS 750712185 has an invalid check digit: 5, expected 4",
        ),
        ({"Numéro FINESS établissement juridique": "75071218"}, "is not 9 characters"),
        ({"Numéro FINESS site": "2C0000123"}, "FINESS '2C0000123' is not 9 characters"),
        (
            {"Type d'identifiant PP": "R", "Identification nationale PP": "R" + RPPS},
            "not one digit",
        ),
        ({"Identifiant PP": "", "Identification nationale PP": "8"}, "Identifiant PP is empty"),
    ],
)
def test_each_bad_row_says_why(tmp_path: Path, changes: dict[str, str], expected: str) -> None:
    good = _line(_values())
    path = _file(tmp_path, [good, _line(_values(**changes)), good])
    first, bad, last = list(read_activities(path))
    assert isinstance(first, Row) and isinstance(last, Row)  # the import goes on
    assert isinstance(bad, RowError)
    assert bad.line == 3
    assert expected in bad.message


def test_corsican_finess_is_only_checked_for_its_shape(tmp_path: Path) -> None:
    path = _file(tmp_path, [_line(_values(**{"Numéro FINESS site": "2A0000123"}))])
    row = _only(path)
    assert isinstance(row, Row) and row.structure_key == "2A0000123"


def test_several_problems_are_reported_together(tmp_path: Path) -> None:
    changes = {"Identifiant PP": "10000001016", "Code profession": "1"}
    error = _only(_file(tmp_path, [_line(_values(**changes))]))
    assert isinstance(error, RowError)
    assert "expected 5" in error.message
    assert "Identification nationale PP" in error.message
    assert "Code profession '1'" in error.message


@pytest.mark.parametrize(("cut", "count"), [(1, 55), (-1, 57)])
def test_wrong_column_count(tmp_path: Path, cut: int, count: int) -> None:
    cells = [_values()[c] for c in ACTIVITE_COLUMNS]
    cells = cells[:-1] if cut == 1 else [*cells, "extra"]
    error = _only(_file(tmp_path, ["|".join(cells) + "|"]))
    assert error == RowError(2, f"{count} columns instead of 56")


def test_a_row_without_its_trailing_separator_is_read(tmp_path: Path) -> None:
    row = _only(_file(tmp_path, [_line(_values())[:-1]]))
    assert isinstance(row, Row) and row.values["Libellé genre d'activité"] == "Activité standard"


def test_known_professions_refuse_other_codes(tmp_path: Path) -> None:
    path = _file(tmp_path, [_line(_values()), _line(_values(**{"Code profession": "99"}))])
    results = list(read_activities(path, known_professions={"10", "21"}))
    assert isinstance(results[0], Row)
    assert results[1] == RowError(3, "Code profession '99' is not a known profession (TRE_G15)")
    assert all(isinstance(r, Row) for r in read_activities(path))


# ----------------------------------------------------------------------------- identifiers


@given(st.text(alphabet="0123456789", min_size=10, max_size=10), st.integers(0, 9))
def test_rpps_key_is_luhn(body: str, digit: int) -> None:
    key = luhn.calc_check_digit(body)
    assert rpps_problem(body + key) is None
    if str(digit) != key:
        problem = rpps_problem(body + str(digit))
        assert problem is not None and f"expected {key}" in problem


@given(st.text(alphabet="0123456789", min_size=8, max_size=8), st.integers(0, 9))
def test_finess_and_siren_keys_are_luhn(body: str, digit: int) -> None:
    key = luhn.calc_check_digit(body)
    assert finess_problem(body + key) is None
    assert siren_problem(body + key) is None
    if str(digit) != key:
        assert f"expected {key}" in (finess_problem(body + str(digit)) or "")
        assert f"expected {key}" in (siren_problem(body + str(digit)) or "")


@given(st.text(alphabet="0123456789", min_size=13, max_size=13))
def test_siret_agrees_with_stdnum(body: str) -> None:
    for digit in "0123456789":
        number = body + digit
        assert (siret_problem(number) is None) == stdnum_siret.is_valid(number)


def test_published_examples() -> None:
    # Real structures: CHU de Nancy, AP-HP, and the FINESS of the Annuaire IG examples.
    for finess in ("540002698", "750712184", "580008803"):
        assert finess_problem(finess) is None
    # The RPPS numbers of the Annuaire IG examples are fictitious, with a wrong key.
    assert "expected 4" in (rpps_problem("10003461033") or "")
    assert "expected 2" in (rpps_problem("10102727017") or "")
    assert rpps_problem("1000346103x") == "RPPS '1000346103x' is not 11 digits"
    assert siret_problem(SIRET) is None


# ----------------------------------------------------------------------------- wrong files


def _error(path: Path) -> str:
    results = read_activities(path)
    with pytest.raises(ExtractionError) as caught:
        next(results)
    return str(caught.value)


def test_a_semicolon_csv_is_refused_with_one_message(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text("rpps;nom;prenom\n10000001015;MARTIN;Jean\n", encoding="utf-8")
    message = _error(path)
    assert "export.csv is not a PS_LibreAcces_Personne_activite extraction" in message
    assert "expected the 56-column '|'-separated header" in message
    assert "Type d'identifiant PP|Identifiant PP|" in message
    assert "found a header separated by ';' (3 columns)" in message


def test_another_ps_libreacces_file_is_refused(tmp_path: Path) -> None:
    header = "Type d'identifiant PP|Identifiant PP|Identification nationale PP|Nom d'exercice|"
    header += "Prénom d'exercice|Code type savoir-faire|Libellé type savoir-faire|"
    path = tmp_path / "PS_LibreAcces_Personne_SavoirFaire_202506300900.txt"
    path.write_text(header + "\n", encoding="utf-8")
    message = _error(path)
    assert "found 7 '|'-separated column(s)" in message


def test_a_renamed_column_is_named(tmp_path: Path) -> None:
    names = list(ACTIVITE_COLUMNS)
    names[16] = "Libellé spécialité"
    path = tmp_path / "a.txt"
    path.write_text("|".join(names) + "|\n", encoding="utf-8")
    message = _error(path)
    assert "found column 17 named 'Libellé spécialité' instead of 'Libellé savoir-faire'" in message


def test_header_case_and_spacing_do_not_matter_but_keys_stay_official(tmp_path: Path) -> None:
    header = "|".join(c.upper().replace(" ", "  ") for c in ACTIVITE_COLUMNS) + "|"
    path = tmp_path / "a.txt"
    path.write_text(header + "\n" + _line(_values()) + "\n", encoding="utf-8")
    row = _only(path)
    assert isinstance(row, Row) and tuple(row.values) == ACTIVITE_COLUMNS


def test_empty_missing_and_falsely_named_files(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_bytes(b"")
    assert "empty.txt is empty" in _error(tmp_path / "empty.txt")
    assert "cannot open" in _error(tmp_path / "missing.txt")
    (tmp_path / "fake.zip").write_text(HEADER + "\n", encoding="utf-8")
    assert "fake.zip is named .zip but is not a zip archive" in _error(tmp_path / "fake.zip")


def test_a_binary_file_with_no_line_break_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "blob.txt"
    path.write_bytes(b"\x00\x01" * (1 << 20))
    message = _error(path)
    assert "not a text extraction" in message or "is not a PS_LibreAcces" in message


# ----------------------------------------------------------------------------- zips


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_zip_input_picks_the_activity_member(tmp_path: Path) -> None:
    text = ("\n".join([HEADER, _line(_values()), _line(_values())]) + "\n").encode()
    path = _zip(
        tmp_path / "extraction.zip",
        {
            "LISEZMOI.txt": b"notice",
            "PS_LibreAcces_Dipl_AutExerc_202506300900.txt": b"other layout",
            "dossier/PS_LibreAcces_Personne_activite_202506300900.txt": text,
        },
    )
    rows = list(read_activities(path))
    assert [r.line for r in rows] == [2, 3]
    assert all(isinstance(r, Row) for r in rows)


def test_a_zip_without_the_activity_file(tmp_path: Path) -> None:
    path = _zip(tmp_path / "x.zip", {"PS_LibreAcces_Dipl_AutExerc_202506300900.txt": b"a|b|\n"})
    message = _error(path)
    assert message == (
        "x.zip holds no PS_LibreAcces_Personne_activite*.txt file "
        "(it holds: PS_LibreAcces_Dipl_AutExerc_202506300900.txt)"
    )


def test_a_truncated_zip_is_a_clear_error(tmp_path: Path) -> None:
    text = ("\n".join([HEADER] + [_line(_values())] * 2000) + "\n").encode()
    path = _zip(tmp_path / "x.zip", {"PS_LibreAcces_Personne_activite_202506300900.txt": text})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    message = _error(path)
    assert message.startswith("x.zip is not a readable zip archive (truncated or corrupt:")


def test_damaged_zip_data_is_a_clear_error_even_mid_stream(tmp_path: Path) -> None:
    lines = [_line(_values(**{"Numéro Voie (coord. structure)": str(i)})) for i in range(20_000)]
    text = ("\n".join([HEADER, *lines]) + "\n").encode()
    path = _zip(tmp_path / "x.zip", {"PS_LibreAcces_Personne_activite_202506300900.txt": text})
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)
    path.write_bytes(bytes(data))
    with pytest.raises(ExtractionError) as caught:
        collections.deque(read_activities(path), maxlen=0)
    assert "x.zip:PS_LibreAcces_Personne_activite_202506300900.txt is corrupt" in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


# ----------------------------------------------------------------------------- encodings


def test_windows_1252_file_with_accents(tmp_path: Path) -> None:
    values = _values(**{"Prénom d'exercice": "Anaïs-Françoise", "Nom d'exercice": "LŒUVRE"})
    path = _file(tmp_path, [_line(values)], encoding="cp1252")
    assert b"Libell\xe9" in path.read_bytes()
    row = _only(path)
    assert isinstance(row, Row)
    assert dict(row.values) == values
    assert row.values["Enseigne commerciale site"] == "CŒUR DE VILLE"


def test_iso_8859_1_file_reads_the_same(tmp_path: Path) -> None:
    values = _values(**{"Enseigne commerciale site": "À L'ÉTOILE"})
    row = _only(_file(tmp_path, [_line(values)], encoding="latin-1"))
    assert isinstance(row, Row) and dict(row.values) == values


def test_an_undecodable_line_is_a_row_error_and_the_import_goes_on(tmp_path: Path) -> None:
    good = _line(_values()).encode("utf-8")
    bad = _line(_values(**{"Prénom d'exercice": "Jérôme"})).encode("cp1252")
    path = tmp_path / "a.txt"
    path.write_bytes(b"\n".join([HEADER.encode(), good, bad, good]) + b"\n")
    first, error, last = list(read_activities(path))
    assert isinstance(first, Row) and isinstance(last, Row)
    assert isinstance(error, RowError) and error.line == 3
    assert error.message.startswith("not UTF-8 text: byte 0xE9 at byte ")
    assert "read as UTF-8" in error.message


def test_a_byte_undefined_in_windows_1252_is_a_row_error(tmp_path: Path) -> None:
    good = _line(_values(**{"Prénom d'exercice": "Gaël"})).encode("cp1252")
    path = tmp_path / "a.txt"
    bad = good.replace(b"Ga\xebl", b"Ga\x81l")
    path.write_bytes(b"\n".join([HEADER.encode("cp1252"), good, bad]) + b"\n")
    first, error = list(read_activities(path))
    assert isinstance(first, Row) and first.values["Prénom d'exercice"] == "Gaël"
    assert isinstance(error, RowError) and "byte 0x81" in error.message
    assert "Windows-1252" in error.message


def test_bom_crlf_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    body = "\r\n".join([HEADER, _line(_values()), "", "  ", _line(_values())]) + "\r\n"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    rows = list(read_activities(path))
    assert [r.line for r in rows] == [2, 5]
    assert all(isinstance(r, Row) and r.values["Libellé genre d'activité"] == "Activité standard"
               for r in rows)  # fmt: skip


# ----------------------------------------------------------------------------- streaming


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_reading_streams_a_200k_row_file(tmp_path: Path) -> None:
    blank = {c: "" for c in ACTIVITE_COLUMNS[3:]}
    line = _line(_values(**{**blank, "Code profession": "60"})) + "\n"
    path = tmp_path / "big.txt"
    with path.open("w", encoding="utf-8") as out:
        out.write(HEADER + "\n")
        for _ in range(200):
            out.write(line * 1000)
    results: Iterator[Row | RowError] = read_activities(path)
    assert inspect.isgenerator(read_activities(path))
    base = _rss_kib()
    peak = base
    count = rows = last_line = 0
    for result in results:
        count += 1
        rows += isinstance(result, Row)
        last_line = result.line
        if count % 20_000 == 0:
            peak = max(peak, _rss_kib())
    assert count == rows == 200_000
    assert last_line == 200_001
    # All the rows at once would take hundreds of MiB; a stream stays flat.
    assert peak - base < 32 * 1024
