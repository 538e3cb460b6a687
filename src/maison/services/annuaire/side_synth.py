"""Synthetic side files of the Annuaire Santé open data (test data only), for the persons of a
synthetic activity extraction (:func:`maison.services.annuaire.synth.synthesize`).

:func:`synthesize_side` draws, person by person, the rows of the three side files in the layouts
of :mod:`maison.services.annuaire.side_files`; :func:`write_side_files` writes them as the
published ``.txt`` files (or one zip each). Deterministic for a seed and the same activity rows;
the activity rows of a person must come together (as ``synthesize`` yields them).

What is drawn, and where the codes were checked:

* diplomas: the *diplôme d'État* of the person's profession (TRE_R48-DiplomeEtatFrancais, type DE
  of TRE_R14-TypeDiplome), a second one for some nurses (bloc, anesthésie, puériculture, cadre de
  santé); none for students (catégorie E) nor dietitians (their diploma is not a DE). About 4% of
  the médecins, pharmaciens, dentists and sages-femmes hold an exercise authorisation instead
  (TRE_R17-TypeAutorisation AM01 / AM27, with the TRE_R18-DisciplineAutorisation matching the
  médecin's speciality). Codes and labels read in the NOS CodeSystems of ``ansforge/IG-NOS``
  (commit b8b0cc32); the mapping does not use the R17/R18 table names (see ``side_files``).
* savoir-faire: the ones of the activity rows (TRE_R38, from ``synth``), plus a second ordinal
  speciality for about 8% of the médecins.
* MSSanté mailboxes: personal (PER) ones ``prenom.nom@<domain>`` for a share of each profession
  (``medecin.mssante.fr`` and ``infirmier.mssante.fr`` as in ANS examples, ``pro.mssante.fr`` as
  in the guide's examples for the others), a few cabinet (CAB) ones, organisational (ORG) ones for
  hospitals, health centres, pharmacies and groups, applicative (APP) ones for laboratories. The
  structure is identified by its IDNST (the activity file's *Ancien identifiant de la
  structure*), its type digit in ``Type d'identifiant structure``: an assumption, the published
  convention is not known. ``Dématérialisation`` is left empty (its values are not known).

https://annuaire.sante.fr/web/site-pro/extractions-publiques
"""

from __future__ import annotations

import itertools
import random
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import IO, Final

from maison.services.annuaire import mapping as m
from maison.services.annuaire import side_files as sf
from maison.services.annuaire.side_files import SideKind
from maison.services.annuaire.synth import SAVOIR_FAIRE_MEDECIN, published_text

# --- Code lists (checked against the NOS CodeSystems of ansforge/IG-NOS) -----------------------
#: TRE_R14-TypeDiplome DE.
TYPE_DE: Final = ("DE", "Diplôme d'Etat français")
#: Profession (TRE_G15) → its diplômes d'État (TRE_R48 code, label, weight).
DIPLOMES_ETAT: Final[dict[str, tuple[tuple[str, str, int], ...]]] = {
    "10": (("DE05", "DE Docteur en médecine", 1),),
    "21": (("DE02", "DE Docteur en pharmacie", 9), ("DE01", "DE Pharmacien", 1)),
    "40": (("DE03", "DE Docteur en chirurgie dentaire", 9), ("DE04", "DE Chirurgien-Dentiste", 1)),
    "50": (("DE06", "DE Sage-Femme", 1),),
    "26": (("DE07", "DE Audioprothésiste", 1),),
    "28": (("DE08", "DE Opticien-Lunetier", 1),),
    "60": (("DE09", "DE Infirmier", 1),),
    "70": (("DE11", "DE Masseur-Kinésithérapeute", 1),),
    "80": (("DE12", "DE Pédicure-Podologue", 1),),
    "91": (("DE13", "DE Orthophoniste", 1),),
    "92": (("DE14", "DE Orthoptiste", 1),),
    "93": (("DE15", "DE Psychologue", 1),),
    "94": (("DE16", "DE Ergothérapeute", 1),),
    "96": (("DE17", "DE Psychomotricien", 1),),
    "98": (("DE18", "DE Manipulateur ERM", 1),),
}
#: Second diplomas of nurses (TRE_R48 code, label, share of the nurses).
DIPLOMES_INFIRMIER: Final = (
    ("DE19", "DE Infirmier de bloc opératoire", 0.04),
    ("DE20", "DE Infirmier anesthésiste", 0.03),
    ("DE21", "DE Infirmier puériculteur", 0.04),
    ("DE22", "DE Cadre de santé", 0.03),
)
#: TRE_R17-TypeAutorisation codes drawn.
AUTORISATIONS: Final = {
    "AM01": "Autorisation de plein exercice",
    "AM27": "Autorisation d'exercice UE/EEE",
}
#: TRE_R38 speciality → TRE_R18-DisciplineAutorisation (code, label).
DISCIPLINES: Final = {
    "SM54": ("DAUT26", "Médecine générale"),
    "SM26": ("DAUT26", "Médecine générale"),
    "SM53": ("DAUT26", "Médecine générale"),
    "SM02": ("DAUT16", "Anesthésie et Réanimation"),
    "SM42": ("DAUT35", "Psychiatrie"),
    "SM04": ("DAUT17", "Cardiologie et Maladies vasculaires"),
    "SM40": ("DAUT33", "Pédiatrie"),
    "SM44": ("DAUT36", "Radiodiagnostic et Imagerie médicale"),
    "SM38": ("DAUT13", "Ophtalmologie"),
    "SM20": ("DAUT11", "Gynécologie-obstétrique"),
    "SM59": ("DAUT25", "Médecine d'urgence"),
    "SM15": ("DAUT18", "Dermatologie et Vénéréologie"),
    "SM24": ("DAUT20", "Gastro-entérologie et Hépatologie"),
    "SM41": ("DAUT34", "Pneumologie"),
    "SM32": ("DAUT31", "Neurologie"),
    "SM48": ("DAUT38", "Rhumatologie"),
    "SM18": ("DAUT22", "Gériatrie"),
    "SM25": ("DAUT40", "Médecine du travail"),
    "SM08": ("DAUT05", "Chirurgie orthopédique et Traumatologie"),
    "SM14": ("DAUT10", "Chirurgie viscérale et digestive"),
    "SM19": ("DAUT23", "Gynécologie médicale"),
    "SM27": ("DAUT27", "Médecine interne"),
    "SM30": ("DAUT30", "Néphrologie"),
    "SM36": ("DAUT32", "Oncologie"),
    "SM39": ("DAUT14", "Oto-rhino-laryngologie et Chirurgie cervico-faciale"),
    "SM12": ("DAUT08", "Chirurgie urologique"),
    "SM03": ("DAUT01", "Biologie médicale"),
    "SM49": ("DAUT39", "Santé publique et Médecine sociale"),
    "SM01": ("DAUT15", "Anatomie et Cytologie pathologiques"),
}
_AUTHORISED_PROFESSIONS: Final = ("10", "21", "40", "50")
#: Share of the RPPS persons of a profession with a personal mailbox (default "*").
PER_SHARE: Final = {"10": 0.7, "21": 0.5, "40": 0.4, "50": 0.5, "60": 0.25, "70": 0.3, "*": 0.15}
_ADELI_PER_SHARE: Final = 0.08
_CAB_SHARE: Final = 0.08
#: Mailbox domain of a profession (default "*").
DOMAINS: Final = {"10": "medecin.mssante.fr", "60": "infirmier.mssante.fr", "*": "pro.mssante.fr"}
#: Secteur d'activité (TRE_R02) → (share of the structures with an ORG box, with an APP box).
STRUCTURE_BOXES: Final = {
    "SA01": (0.8, 0.0),
    "SA02": (0.8, 0.0),
    "SA03": (0.8, 0.0),
    "SA04": (0.8, 0.0),
    "SA05": (0.4, 0.0),
    "SA17": (0.4, 0.0),
    "SA52": (0.4, 0.0),
    "SA25": (0.3, 0.6),
    "SA33": (0.3, 0.0),
    "SA08": (0.15, 0.0),
    "SA09": (0.15, 0.0),
}
_HOSPITAL_SECTORS: Final = ("SA01", "SA02", "SA03", "SA04")
_HOSPITAL_SERVICES: Final = (
    ("secretariat.urgences", "SERVICE DES URGENCES"),
    ("secretariat.cardiologie", "SERVICE DE CARDIOLOGIE"),
    ("secretariat.pediatrie", "SERVICE DE PEDIATRIE"),
    ("secretariat.radiologie", "SERVICE DE RADIOLOGIE"),
    ("secretariat.geriatrie", "SERVICE DE GERIATRIE"),
    ("pui", "PHARMACIE A USAGE INTERIEUR"),
)
_NOT_SLUG: Final = re.compile(r"[^a-z0-9]+")


def _slug(text: str) -> str:
    """``"Jérôme D'ALMEIDA"`` → ``"jerome-dalmeida"``."""
    decomposed = unicodedata.normalize("NFKD", text.replace("'", ""))
    bare = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    return _NOT_SLUG.sub("-", bare).strip("-")


def _row(columns: tuple[str, ...], cells: Mapping[str, str]) -> dict[str, str]:
    return {column: cells.get(column, "") for column in columns}


class _SideSynth:
    """The drawing state of one run: the rng, the mailboxes given, the structures seen."""

    def __init__(self, seed: int) -> None:
        self.rand = random.Random(seed ^ 0x51DE_F11E).random
        self.addresses: set[str] = set()
        self.structures: set[str] = set()

    def pick(self, items: tuple[tuple[str, str, int], ...]) -> tuple[str, str]:
        total = sum(weight for _, _, weight in items)
        draw = self.rand() * total
        for code, label, weight in items:
            draw -= weight
            if draw < 0:
                return code, label
        return items[-1][0], items[-1][1]

    def address(self, local: str, domain: str) -> str:
        """``local@domain``, with a number after the local part if already given."""
        candidate = f"{local}@{domain}"
        for number in itertools.count(2):
            if candidate not in self.addresses:
                break
            candidate = f"{local}{number}@{domain}"
        self.addresses.add(candidate)
        return candidate

    # persons -------------------------------------------------------------------------------

    def person(self, rows: list[Mapping[str, str]]) -> Iterator[tuple[SideKind, dict[str, str]]]:
        first = rows[0]
        pp = {c: first[c] for c in (m.TYPE_ID_PP, m.ID_PP, m.IDNAT_PP, m.NOM, m.PRENOM)}
        profession, category = first[m.PROFESSION], first[m.CATEGORIE]
        student = category == "E"
        yield from self.diplomas(pp, first, profession, student)
        yield from self.savoir_faire(pp, rows, profession)
        yield from self.mailboxes(pp, rows, profession, student)
        for row in rows:
            yield from self.structure(row)

    def diplomas(
        self, pp: dict[str, str], first: Mapping[str, str], profession: str, student: bool
    ) -> Iterator[tuple[SideKind, dict[str, str]]]:
        choices = DIPLOMES_ETAT.get(profession)
        if student or choices is None:
            return
        if profession in _AUTHORISED_PROFESSIONS and self.rand() < 0.04:
            code = "AM27" if self.rand() < 0.6 else "AM01"
            cells = {
                **pp,
                sf.TYPE_AUTORISATION: code,
                sf.TYPE_AUTORISATION_LABEL: AUTORISATIONS[code],
            }
            discipline = DISCIPLINES.get(first[m.SF]) if profession == "10" else None
            if discipline is not None:
                cells[sf.DISCIPLINE], cells[sf.DISCIPLINE_LABEL] = discipline
            yield "diplomes", _row(sf.DIPLOMES_COLUMNS, cells)
            return
        drawn = [self.pick(choices)]
        if profession == "60":
            drawn.extend(
                (code, label) for code, label, share in DIPLOMES_INFIRMIER if self.rand() < share
            )
        for code, label in drawn:
            cells = {
                **pp,
                sf.TYPE_DIPLOME: TYPE_DE[0],
                sf.TYPE_DIPLOME_LABEL: TYPE_DE[1],
                sf.DIPLOME: code,
                sf.DIPLOME_LABEL: label,
            }
            yield "diplomes", _row(sf.DIPLOMES_COLUMNS, cells)

    def savoir_faire(
        self, pp: dict[str, str], rows: list[Mapping[str, str]], profession: str
    ) -> Iterator[tuple[SideKind, dict[str, str]]]:
        found: dict[tuple[str, str], Mapping[str, str]] = {}
        for row in rows:
            if row[m.SF]:
                found.setdefault((row[m.TYPE_SF], row[m.SF]), row)
        if not found:
            return
        head = next(iter(found.values()))
        extra: list[tuple[str, str, str, str]] = []
        if profession == "10" and self.rand() < 0.08:
            code, label, _ = SAVOIR_FAIRE_MEDECIN[int(self.rand() * len(SAVOIR_FAIRE_MEDECIN))]
            if (head[m.TYPE_SF], code) not in found:
                extra.append((head[m.TYPE_SF], head[m.TYPE_SF_LABEL], code, label))
        listed = [
            (r[m.TYPE_SF], r[m.TYPE_SF_LABEL], r[m.SF], r[m.SF_LABEL]) for r in found.values()
        ]
        for kind, kind_label, code, label in listed + extra:
            cells = {
                **pp,
                **{c: head[c] for c in (m.PROFESSION, m.PROFESSION_LABEL)},
                **{c: head[c] for c in (m.CATEGORIE, m.CATEGORIE_LABEL)},
                sf.TYPE_SF: kind,
                sf.TYPE_SF_LABEL: kind_label,
                sf.SF: code,
                sf.SF_LABEL: label,
            }
            yield "savoir_faire", _row(sf.SAVOIR_FAIRE_COLUMNS, cells)

    def mailbox_cells(
        self, pp: dict[str, str], row: Mapping[str, str], bal: str, address: str
    ) -> dict[str, str]:
        national = row[m.ANCIEN_ID_STRUCTURE]
        return {
            **pp,
            sf.TYPE_BAL: bal,
            sf.ADRESSE_BAL: address,
            sf.TYPE_ID_STRUCTURE: national[:1],
            sf.ID_STRUCTURE: national,
            sf.SERVICE: row[m.COMPLEMENT_DESTINATAIRE],
            sf.CIVILITE_EXERCICE: row[m.CIVILITE_EXERCICE],
            sf.MSS_CATEGORIE: row[m.CATEGORIE],
            sf.CATEGORIE_LABEL: row[m.CATEGORIE_LABEL],
            sf.PROFESSION: row[m.PROFESSION],
            sf.PROFESSION_LABEL: row[m.PROFESSION_LABEL],
            sf.SF: row[m.SF],
            sf.SF_LABEL: row[m.SF_LABEL],
            sf.RAISON_SOCIALE_BAL: row[m.RAISON_SOCIALE],
            sf.ENSEIGNE_BAL: row[m.ENSEIGNE],
        }

    def mailboxes(
        self, pp: dict[str, str], rows: list[Mapping[str, str]], profession: str, student: bool
    ) -> Iterator[tuple[SideKind, dict[str, str]]]:
        if student:
            return
        first = rows[0]
        domain = DOMAINS.get(profession, DOMAINS["*"])
        share = (
            PER_SHARE.get(profession, PER_SHARE["*"])
            if first[m.TYPE_ID_PP] == "8"
            else _ADELI_PER_SHARE
        )
        if self.rand() < share:
            local = f"{_slug(first[m.PRENOM])}.{_slug(first[m.NOM])}"
            address = self.address(local, domain)
            yield "mssante", _row(sf.MSSANTE_COLUMNS, self.mailbox_cells(pp, first, "PER", address))
        cabinet = next((r for r in rows if r[m.SECTEUR] in ("SA07", "SA08")), None)
        if cabinet is not None and cabinet[m.MODE] == "L" and self.rand() < _CAB_SHARE:
            address = self.address(f"cabinet.{_slug(first[m.NOM])}", domain)
            cells = self.mailbox_cells(pp, cabinet, "CAB", address)
            yield "mssante", _row(sf.MSSANTE_COLUMNS, cells)

    # structures ----------------------------------------------------------------------------

    def structure(self, row: Mapping[str, str]) -> Iterator[tuple[SideKind, dict[str, str]]]:
        national = row[m.ANCIEN_ID_STRUCTURE]
        if not national or national in self.structures:
            return
        self.structures.add(national)
        org_share, app_share = STRUCTURE_BOXES.get(row[m.SECTEUR], (0.0, 0.0))
        domain = f"{_slug(row[m.RAISON_SOCIALE])[:40].strip('-') or 'structure'}.mssante.fr"
        boxes: list[tuple[str, str, str]] = []
        if self.rand() < org_share:
            if row[m.SECTEUR] in _HOSPITAL_SECTORS:
                count = 1 + int(self.rand() * 2)
                start = int(self.rand() * len(_HOSPITAL_SERVICES))
                for i in range(count):
                    local, service = _HOSPITAL_SERVICES[(start + i) % len(_HOSPITAL_SERVICES)]
                    boxes.append(("ORG", local, service))
            else:
                boxes.append(("ORG", "secretariat", ""))
        if self.rand() < app_share:
            boxes.append(("APP", "resultats", ""))
        for bal, local, service in boxes:
            cells = {
                sf.TYPE_BAL: bal,
                sf.ADRESSE_BAL: self.address(local, domain),
                sf.TYPE_ID_STRUCTURE: national[:1],
                sf.ID_STRUCTURE: national,
                sf.SERVICE: service,
                sf.RAISON_SOCIALE_BAL: row[m.RAISON_SOCIALE],
                sf.ENSEIGNE_BAL: row[m.ENSEIGNE],
            }
            yield "mssante", _row(sf.MSSANTE_COLUMNS, cells)


def synthesize_side(
    activity_rows: Iterable[Mapping[str, str]], seed: int
) -> Iterator[tuple[SideKind, dict[str, str]]]:
    """(kind, row) of the side files for the persons of ``activity_rows`` (test data only), the
    rows keyed by the published column names of each kind.

    https://annuaire.sante.fr/web/site-pro/extractions-publiques
    """
    drawer = _SideSynth(seed)
    for _, group in itertools.groupby(activity_rows, key=lambda r: r[m.IDNAT_PP]):
        yield from drawer.person(list(group))


def side_file_name(kind: SideKind, generated_at: datetime) -> str:
    """The published file name of a side file, ``<prefix>_<YYYYMMDDhhmm>.txt``.

    https://annuaire.sante.fr/web/site-pro/extractions-publiques
    """
    return f"{sf.PREFIXES[kind]}_{generated_at:%Y%m%d%H%M}.txt"


def _line(columns: tuple[str, ...], row: Mapping[str, str]) -> str:
    line = "|".join(row.get(c, "") for c in columns) + "|\n"
    if line.count("|") != len(columns) or line.count("\n") != 1 or "\r" in line:
        raise ValueError(f"a value of {dict(row)!r} holds '|' or a line break")
    return line


def write_side_files(
    activity_rows: Iterable[Mapping[str, str]],
    directory: str | Path,
    *,
    seed: int,
    encoding: str = "utf-8",
    generated_at: datetime | None = None,
    compress: bool = False,
) -> dict[SideKind, Path]:
    """Write the three side files of ``activity_rows`` in ``directory`` (one ``.txt`` each, or
    one ``.zip`` each holding it when ``compress``), streaming; returns kind → path.

    https://annuaire.sante.fr/web/site-pro/extractions-publiques
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = generated_at or datetime.now()
    paths: dict[SideKind, Path] = {}
    outputs: dict[SideKind, IO[str]] = {}
    with ExitStack() as stack:
        for kind in sf.SIDE_KINDS:
            name = side_file_name(kind, stamp)
            paths[kind] = folder / (name[: -len(".txt")] + ".zip" if compress else name)
            text = stack.enter_context(published_text(paths[kind], name, stamp, encoding))
            text.write("|".join(sf.COLUMNS[kind]) + "|\n")
            outputs[kind] = text
        batches: dict[SideKind, list[str]] = {kind: [] for kind in sf.SIDE_KINDS}
        for kind, row in synthesize_side(activity_rows, seed):
            batch = batches[kind]
            batch.append(_line(sf.COLUMNS[kind], row))
            if len(batch) >= 4096:
                outputs[kind].write("".join(batch))
                batch.clear()
        for kind, batch in batches.items():
            outputs[kind].write("".join(batch))
    return paths
