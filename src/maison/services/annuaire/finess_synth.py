"""Synthetic FINESS establishment extraction (test data only), in the etalab layout.

:func:`synthesize_finess` draws établissements (entités géographiques) as the public file lists
them: hospitals (several sites of one entité juridique), clinics, rehabilitation and cancer
centres, home care, health centres and pharmacies, in the places of
:mod:`~maison.services.annuaire.synth` (mainland, Corsica, overseas), with valid FINESS and SIRET
keys; sites of one entité juridique share its FINESS EJ and its SIREN. :func:`write_finess`
writes them as the published file: Windows-1252, the ``finess;etalab`` line, the
``structureet`` lines, then the ``geolocalisation`` lines; zipped when the path ends in
``.zip``. Deterministic for a seed; a shorter run is a prefix of a longer one.

Code lists and where each was checked: the catégories (code and label) against NOS
TRE_R66-CategorieEtablissement; the modes de fixation des tarifs against TRE_R74; the SPH codes
against JDV_J162-ESPIC-RASS (TRE_R73); the agrégat 1102 « Centres Hospitaliers » of catégorie 355
against a published FINESS sample. Written from memory and NOT checked: which catégories carry
which mode de fixation / SPH code, the APE codes (8610Z hospitals, 4773Z pharmacies, 8621Z
health centres), the overseas département codes ``9A`` … ``9F`` with a 3-digit commune, the
overseas FINESS numbers (``970`` + the département's last digit, as in :mod:`synth`), the
projections named by ``sourcecoordet`` and what the header's number counts. The agrégats of the
other catégories were not found: they are left empty. Names, streets, phones and coordinates are
fictitious (phones in the ARCEP ranges kept for fiction).

https://www.data.gouv.fr/fr/datasets/finess-extraction-du-fichier-des-etablissements/
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import IO, Final, TypeVar

from maison.services.annuaire.finess import (
    FINESS_COLUMNS,
    GEOLOCALISATION,
    MEMBER_PREFIX,
    OVERSEAS,
    STRUCTURE,
)
from maison.services.annuaire.synth import (
    _PLACES,
    _Place,
    _unaccented_upper,
    luhn_key,
    published_text,
)

_T = TypeVar("_T")

#: Keys of a synthesised row besides :data:`FINESS_COLUMNS`: its geolocalisation line (written
#: only when ``coordxet`` is present).
GEO_KEYS: Final = ("coordxet", "coordyet", "sourcecoordet")

#: TRE_R66-CategorieEtablissement codes drawn, with their labels (checked against the NOS).
CATEGORIES: Final = {
    "101": "Centre Hospitalier Régional (C.H.R.)",
    "106": "Centre hospitalier, ex Hôpital local",
    "109": "Etablissement de santé privé autorisé en SSR",
    "122": "Etablissement Soins Obstétriques Chirurgico-Gynécologiques",
    "124": "Centre de Santé",
    "127": "Hospitalisation à Domicile",
    "128": "Etablissement de Soins Chirurgicaux",
    "129": "Etablissement de Soins Médicaux",
    "131": "Centre de Lutte Contre Cancer",
    "354": "Service de Soins Infirmiers A Domicile (S.S.I.A.D)",
    "355": "Centre Hospitalier (C.H.)",
    "362": "Etablissement de Soins Longue Durée",
    "365": "Etablissement de Soins Pluridisciplinaire",
    "620": "Pharmacie d'Officine",
}
#: Agrégats known for a catégorie (the others are left empty, see the module docstring).
AGREGATS: Final = {"355": ("1102", "Centres Hospitaliers")}
#: TRE_R74-ModeFixationTarifaire codes drawn (labels checked).
MODES_TARIF: Final = {
    "03": "ARS établissements Publics de santé dotation globale",
    "04": "ARS établissements PSPH dotation globale",
    "07": "ARS établissements de santé non financés dotation globale",
}
#: TRE_R73-ESPIC codes drawn (labels checked against JDV_J162).
SPH: Final = {
    "0": "Non concerné",
    "1": "Etablissement public de santé",
    "6": "Etablissement de santé privé d'intérêt collectif",
}
#: FINESS département codes of the overseas départements (as :data:`finess.OVERSEAS`).
_OVERSEAS_FINESS: Final = {
    "971": "9A", "972": "9B", "973": "9C", "974": "9D", "975": "9E", "976": "9F",
}  # fmt: skip
_PROJECTIONS: Final = {
    "971": "UTM_N20", "972": "UTM_N20", "973": "UTM_N22", "974": "RGR92UTM40S",
    "975": "UTM_N21", "976": "RGM04UTM38S",
}  # fmt: skip
_SOURCE: Final = "1,ATLASANTE,100,IGN,BD_ADRESSE,V2.2,"
#: The header's third field (a third-party reader quotes ``finess;etalab;98;<date>``).
_HEADER_NUMBER: Final = "98"


@dataclass(frozen=True, slots=True)
class _Kind:
    """A kind of établissement and how it is drawn."""

    category: str
    weight: int
    names: tuple[tuple[str, str], ...]  # (rs, rslongue) patterns; {c} commune, {q} qualifier
    ape: str
    mft: tuple[str, ...]  # drawn among ("" = none)
    sph: tuple[str, ...]
    sites: int  # at most this many sites per entité juridique
    public: bool


_KINDS: Final = (
    _Kind("620", 40, (("PHARMACIE {q}", ""), ("PHARMACIE {q}", "SELARL PHARMACIE {q}"),
                      ("PHARMACIE DE {c}", "")), "4773Z", ("",), ("",), 1, False),
    _Kind("355", 8, (("CH DE {c}", "CENTRE HOSPITALIER DE {c}"),), "8610Z", ("03",), ("1",),
          3, True),
    _Kind("101", 2, (("CHR DE {c}", "CENTRE HOSPITALIER REGIONAL DE {c}"),), "8610Z",
          ("03",), ("1",), 4, True),
    _Kind("106", 3, (("CH {q}", "CENTRE HOSPITALIER {q}"),), "8610Z", ("03",), ("1",), 1,
          True),
    _Kind("128", 4, (("CLINIQUE {q}", "CLINIQUE CHIRURGICALE {q}"),), "8610Z", ("07",),
          ("0",), 1, False),
    _Kind("129", 2, (("CLINIQUE {q}", "CLINIQUE MEDICALE {q}"),), "8610Z", ("07",), ("0",),
          1, False),
    _Kind("365", 3, (("POLYCLINIQUE {q}", ""), ("POLYCLINIQUE {q}", "POLYCLINIQUE {q} DE {c}")),
          "8610Z", ("07",), ("0", "6"), 1, False),
    _Kind("109", 4, (("CRF {q}", "CENTRE DE READAPTATION FONCTIONNELLE {q}"),), "8610Z",
          ("07", "04"), ("0", "6"), 2, False),
    _Kind("122", 1, (("MATERNITE {q}", ""),), "8610Z", ("07",), ("0",), 1, False),
    _Kind("131", 1, (("CLCC {q}", "CENTRE DE LUTTE CONTRE LE CANCER {q}"),), "8610Z",
          ("04",), ("6",), 2, False),
    _Kind("127", 2, (("HAD {q}", "HOSPITALISATION A DOMICILE {q}"),), "8610Z", ("07",),
          ("0", "6"), 1, False),
    _Kind("362", 2, (("USLD {q}", "UNITE DE SOINS DE LONGUE DUREE {q}"),), "8610Z", ("03",),
          ("1",), 1, True),
    _Kind("124", 14, (("CENTRE DE SANTE {q}", ""),
                      ("CDS DE {c}", "CENTRE DE SANTE MUNICIPAL DE {c}")), "8621Z", ("",),
          ("",), 1, False),
    _Kind("354", 8, (("SSIAD {q}", "SERVICE DE SOINS INFIRMIERS A DOMICILE {q}"),), "",
          ("",), ("",), 1, False),
)  # fmt: skip
_KIND_DRAW: Final = tuple(k for k in _KINDS for _ in range(k.weight))

_QUALIFIERS: Final = (
    "DU CENTRE", "DE LA GARE", "DES TILLEULS", "DU PARC", "SAINT-JOSEPH", "SAINTE-MARIE",
    "LES LILAS", "BELLEVUE", "PASTEUR", "DU LAC", "SAINT-LOUIS", "DES CEDRES", "DU PONT",
    "LES ORCHIDEES", "SAINTE-ANNE", "DES QUATRE VENTS", "DE L'ESPERANCE", "MONTAIGNE",
)  # fmt: skip
_STREETS: Final = (
    "DE LA REPUBLIQUE", "VICTOR HUGO", "JEAN JAURES", "DU GENERAL DE GAULLE", "PASTEUR",
    "GAMBETTA", "DE LA GARE", "DES ECOLES", "DU MARECHAL FOCH", "DE LA LIBERATION",
    "DE L'HOPITAL", "DE VERDUN", "EMILE ZOLA", "DU 8 MAI 1945", "ANATOLE FRANCE", "DU PORT",
)  # fmt: skip
_TYPES_VOIE: Final = ("R", "R", "R", "AV", "AV", "BD", "PL", "RTE", "CHE", "ALL", "IMP", "QUAI")
_COMPLEMENTS: Final = ("BATIMENT A", "BATIMENT B", "RESIDENCE LES PINS", "ZAC DU MOULIN")
_LIEUX_DITS: Final = ("LIEU DIT LES PRES", "LE BOURG", "LA CROIX BLANCHE", "LES ESSARTS")
_SITES: Final = ("SITE NORD", "SITE SUD", "SITE DE LA ROSERAIE", "HOPITAL DE JOUR")


def _departement(place: _Place) -> tuple[str, str]:
    """(FINESS département code, 3-character commune) of a place."""
    if place.departement in _OVERSEAS_FINESS:
        return _OVERSEAS_FINESS[place.departement], place.cog[2:]
    return place.cog[:2], place.cog[2:]


class _Synth:
    """The drawing state of one :func:`synthesize_finess` run."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.rand = self.rng.random
        mix = random.Random(seed ^ 0xF1E55)
        self.finess_offset = mix.randrange(10**6)
        self.siren_offset = mix.randrange(10**8)
        self.serial = 0  # FINESS numbers drawn
        self.sirens = 0  # SIREN numbers drawn
        self.overseas: dict[str, int] = {}

    def pick(self, items: tuple[_T, ...]) -> _T:
        return items[int(self.rand() * len(items))]

    def digits(self, count: int) -> str:
        return f"{int(self.rand() * 10**count):0{count}d}"

    def finess(self, place: _Place) -> str:
        """A FINESS number in the place's département, unique in the run (Luhn key over the
        first 8 characters; Corsica: a drawn key, no rule being known)."""
        self.serial += 1
        dep = place.departement
        if dep in _OVERSEAS_FINESS:
            count = self.overseas[dep] = self.overseas.get(dep, 0) + 1
            head = f"970{dep[2]}{(self.finess_offset + 7_919 * count) % 10**4:04d}"
        else:
            head = f"{dep}{(self.finess_offset + 7_919 * self.serial) % 10**6:06d}"
        if not head.isdigit():
            return head + str(int(self.rand() * 10))
        return head + luhn_key(head)

    def siren(self) -> str:
        self.sirens += 1
        body = str(10**7 + (self.siren_offset + 48_271 * self.sirens) % (9 * 10**7))
        return body + luhn_key(body)

    def day(self, first: date, last: date) -> str:
        return (first + timedelta(days=int(self.rand() * (last - first).days))).isoformat()

    def entity(self) -> list[dict[str, str]]:
        """The sites of one new entité juridique (one or more rows)."""
        kind = self.pick(_KIND_DRAW)
        place = self.pick(_PLACES)
        legal = self.finess(place)
        siren = self.siren() if self.rand() < 0.9 else ""
        count = 1 + int(self.rand() * kind.sites)
        qualifier = self.pick(_QUALIFIERS)
        mft = self.pick(kind.mft)
        sph = self.pick(kind.sph)
        opened = self.day(date(1960, 1, 1), date(2022, 12, 31))
        rows = []
        for index in range(count):
            site = place if index == 0 else self.pick(_PLACES)
            rows.append(self.site(kind, site, legal, siren, index, qualifier, mft, sph, opened))
        return rows

    def site(
        self,
        kind: _Kind,
        place: _Place,
        legal: str,
        siren: str,
        index: int,
        qualifier: str,
        mft: str,
        sph: str,
        opened: str,
    ) -> dict[str, str]:
        rand = self.rand
        commune_name = place.commune
        fill = {"c": commune_name, "q": qualifier}
        short_pattern, long_pattern = self.pick(kind.names)
        short = short_pattern.format(**fill)[:38]
        long = long_pattern.format(**fill)
        dep, commune = _departement(place)
        hospital = kind.public or kind.category in ("131", "109")
        postal = place.postal
        acheminement = f"{postal} {commune_name}"
        lieudit = ""
        if hospital and rand() < 0.4:
            postal = postal[:2] + f"{int(rand() * 1000):03d}"
            acheminement = f"{postal} {commune_name} CEDEX"
            lieudit = f"{'BP' if rand() < 0.7 else 'CS'} {10 + int(rand() * 90_000)}"
        elif rand() < 0.04:
            lieudit = self.pick(_LIEUX_DITS)
        numvoie = str(1 + int(rand() * 200)) if rand() < 0.9 else ""
        nic = f"{20 * index + 1 + int(rand() * 20):04d}"  # distinct per site
        siret = siren + nic + luhn_key(siren + nic) if siren else ""
        opened_site = (
            opened if index == 0 else self.day(date.fromisoformat(opened), date(2023, 12, 31))
        )
        agregat = AGREGATS.get(kind.category, ("", ""))
        row = {
            "nofinesset": self.finess(place),
            "nofinessej": legal,
            "rs": short,
            "rslongue": long,
            "complrs": self.pick(_SITES) if index and rand() < 0.5 else "",
            "compldistrib": self.pick(_COMPLEMENTS) if rand() < 0.08 else "",
            "numvoie": numvoie,
            "typvoie": self.pick(_TYPES_VOIE),
            "voie": self.pick(_STREETS),
            "compvoie": ("B" if rand() < 0.8 else "T") if numvoie and rand() < 0.05 else "",
            "lieuditbp": lieudit,
            "commune": commune,
            "departement": dep,
            "libdepartement": _unaccented_upper(place.departement_label),
            "ligneacheminement": acheminement,
            "telephone": place.phone + self.digits(4) if rand() < 0.95 else "",
            "telecopie": place.phone + self.digits(4) if rand() < 0.6 else "",
            "categetab": kind.category,
            "libcategetab": CATEGORIES[kind.category],
            "categagretab": agregat[0],
            "libcategagretab": agregat[1],
            "siret": siret,
            "codeape": kind.ape,
            "codemft": mft,
            "libmft": MODES_TARIF.get(mft, ""),
            "codesph": sph,
            "libsph": SPH.get(sph, ""),
            "dateouv": opened_site,
            "dateautor": opened_site
            if rand() < 0.7
            else self.day(date(1960, 1, 1), date.fromisoformat(opened_site)),
            "datemaj": self.day(date(2019, 1, 1), date(2025, 6, 30)),
            "numuai": "",
        }
        if rand() < 0.97:
            if place.departement in _PROJECTIONS:
                x, y = 600_000 + rand() * 200_000, 1_500_000 + rand() * 2_000_000
                projection = _PROJECTIONS[place.departement]
            else:
                x, y = 150_000 + rand() * 1_050_000, 6_100_000 + rand() * 1_000_000
                projection = "LAMBERT_93"
            row["coordxet"] = f"{x:.1f}"
            row["coordyet"] = f"{y:.1f}"
            row["sourcecoordet"] = _SOURCE + projection
        return row


def synthesize_finess(n: int, seed: int) -> Iterator[dict[str, str]]:
    """``n`` synthetic établissements keyed by :data:`FINESS_COLUMNS` (and :data:`GEO_KEYS` when
    geolocated): test data only.

    https://www.data.gouv.fr/fr/datasets/finess-extraction-du-fichier-des-etablissements/
    """
    synth = _Synth(seed)
    emitted = 0
    while emitted < n:
        for row in synth.entity()[: n - emitted]:
            yield row
            emitted += 1


def finess_name(generated_at: datetime) -> str:
    """The published file name, ``etalab-cs1100507-stock-<YYYYMMDD>-<HHMM>.csv``.

    https://www.data.gouv.fr/fr/datasets/finess-extraction-du-fichier-des-etablissements/
    """
    return f"{MEMBER_PREFIX}-{generated_at:%Y%m%d-%H%M}.csv"


def write_finess(
    rows: Iterable[Mapping[str, str]],
    path: str | Path,
    *,
    encoding: str = "cp1252",
    generated_at: datetime | None = None,
) -> Path:
    """Write ``rows`` in the etalab layout to a ``.csv``, or a ``.zip`` holding the named file.

    ``generated_at`` (default: now) dates the header and names the zip member. Returns ``path``.
    https://www.data.gouv.fr/fr/datasets/finess-extraction-du-fichier-des-etablissements/
    """
    target = Path(path)
    stamp = generated_at or datetime.now()
    with published_text(target, finess_name(stamp), stamp, encoding) as text:
        _write(rows, text, stamp)
    return target


def _line(tag: str, values: Iterable[str], number: int) -> str:
    cells = [tag, *values]
    for cell in cells:
        if ";" in cell or "\n" in cell or "\r" in cell:
            raise ValueError(f"row for line {number} has a value holding ';' or a line break")
    return ";".join(cells) + "\n"


def _write(rows: Iterable[Mapping[str, str]], out: IO[str], stamp: datetime) -> None:
    """The header line, the ``structureet`` lines, then the ``geolocalisation`` lines."""
    out.write(f"finess;etalab;{_HEADER_NUMBER};{stamp:%Y-%m-%d}\n")
    geolocations: list[str] = []  # a short line per row: held until the structures are written
    batch: list[str] = []
    for number, row in enumerate(rows, start=2):
        try:
            batch.append(_line(STRUCTURE, (row[c] for c in FINESS_COLUMNS), number))
        except KeyError as exc:
            raise ValueError(f"row for line {number} has no column {exc}") from None
        if row.get("coordxet"):
            geo = (row["nofinesset"], row["coordxet"], row["coordyet"], row["sourcecoordet"])
            geolocations.append(_line(GEOLOCALISATION, (*geo, row["datemaj"]), number))
        if len(batch) >= 4096:
            out.write("".join(batch))
            batch.clear()
    out.write("".join(batch))
    for start in range(0, len(geolocations), 4096):
        out.write("".join(geolocations[start : start + 4096]))


def finess_for_activity(
    activity_rows: Iterable[Mapping[str, str]], seed: int
) -> Iterator[dict[str, str]]:
    """A FINESS extraction of the establishments an activity extraction names (each
    ``Numéro FINESS site`` once, in order of first appearance): their FINESS numbers, legal
    entity, name, SIRET and address from the activity rows, the rest (category, tariff mode,
    dates…) synthesised. Test data only.

    https://www.data.gouv.fr/fr/datasets/finess-extraction-du-fichier-des-etablissements/
    """
    from maison.services.annuaire import mapping as m

    by_insee = {insee: finess for finess, insee in OVERSEAS.items()}
    templates = synthesize_finess(10**9, seed)
    seen: set[str] = set()
    for row in activity_rows:
        site = row.get(m.FINESS_SITE, "")
        if not site or site in seen:
            continue
        seen.add(site)
        out = dict(next(templates))
        commune = row.get(m.CODE_COMMUNE, "")
        departement = commune[:3] if commune.startswith("97") else commune[:2]
        name = row.get(m.RAISON_SOCIALE, "") or out["rslongue"]
        street = " ".join(p for p in (row.get(m.NUMERO_VOIE, ""), row.get(m.INDICE_VOIE, "")) if p)
        out.update(
            nofinesset=site,
            nofinessej=row.get(m.FINESS_EJ, "") or out["nofinessej"],
            rs=name[:38].strip(),
            rslongue=name,
            siret=row.get(m.SIRET, ""),
            numvoie=street,
            typvoie=row.get(m.TYPE_VOIE, ""),
            voie=row.get(m.LIBELLE_VOIE, ""),
        )
        if len(commune) == 5 and row.get(m.CODE_POSTAL):
            out.update(
                departement=by_insee.get(departement, departement),
                commune=commune[2:],  # 75056 → 056, 2A004 → 004, 97120 → 120 (9A)
                ligneacheminement=f"{row[m.CODE_POSTAL]} {row.get(m.LIBELLE_COMMUNE, '').upper()}",
            )
        yield out
