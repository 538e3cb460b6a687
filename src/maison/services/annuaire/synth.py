"""Synthetic Annuaire Santé extraction (test data only) in the official 56-column layout.

:func:`synthesize` draws realistic rows of ``PS_LibreAcces_Personne_activite``: health
professionals with a valid RPPS number (Luhn key) or, for a share of them, an ADELI number only;
their profession (TRE_G15), ordinal speciality (TRE_R38), mode d'exercice, and one or more
activities in structures (cabinets, groups, pharmacies, hospitals, health centres, nursing homes,
laboratories) with a valid SIRET and a FINESS number where such structures have one. Structures
are shared between professionals. :func:`write_extraction` writes them as the published ``.txt``
or zip. Deterministic for a seed; a shorter run is a prefix of a longer one.

Code lists and where each was checked (the tests compare them with ``../shared``):
TRE_G15 profession labels, TRE_R38 savoir-faire labels, TRE_R21 fonction labels, TRE_R02 secteur
labels (JDV_J02), civilités M/MME (JDV_J245), civilités d'exercice DR/PR (JDV_J246), and the
codes the Annuaire API documentation names (catégorie C, mode S, genre GENR03, section A).
Written from memory and NOT checked: the labels of modes L/B, catégories E/M, type de
savoir-faire S, genre GENR01, sections D/G/H; type de voie codes other than R; the authorities
other than CNOM/CNOP/CNOPP; the pays code 99000 (as in a Pro Santé Connect sample); the ADELI
shape (département + 7 digits, no key); the technical ids (``R`` + serial, ``F`` + FINESS +
date as in one guide example) and the *ancien identifiant* forms (``1`` + FINESS, ``3`` + SIRET,
``4`` + RPPS + rang, ``0`` + ADELI). Names, addresses, phones and e-mails are fictitious:
phones in the ARCEP ranges kept for fiction, e-mails at example.org/com/net.

https://annuaire.sante.fr/web/site-pro/extractions-publiques
"""

from __future__ import annotations

import io
import random
import unicodedata
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from pathlib import Path
from typing import IO, Final, TypeVar

from maison.services.annuaire.extraction import ACTIVITE_COLUMNS, ACTIVITE_PREFIX

_T = TypeVar("_T")

# --------------------------------------------------------------------------------------------
# Code lists
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Profession:
    """A TRE_G15 profession and how its people are drawn.

    https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante
    """

    code: str
    label: str
    weight: int  # relative share of the rows (roughly the registered population)
    female: float  # share of women
    adeli: bool  # registered in ADELI only (type 0) rather than RPPS (type 8)
    liberal: float  # share of libéral activities (the rest salaried, 1% volunteer)
    authority: str  # autorité d'enregistrement (ordre, or ARS for the ADELI professions)


PROFESSIONS: Final = (
    Profession("10", "Médecin", 230, 0.50, False, 0.55, "CNOM"),
    Profession("21", "Pharmacien", 70, 0.67, False, 0.45, "CNOP"),
    Profession("40", "Chirurgien-Dentiste", 40, 0.50, False, 0.90, "CNOCD"),
    Profession("50", "Sage-Femme", 25, 0.97, False, 0.30, "CNOSF"),
    Profession("60", "Infirmier", 330, 0.86, False, 0.20, "ONI"),
    Profession("70", "Masseur-Kinésithérapeute", 90, 0.50, False, 0.85, "CNOMK"),
    Profession("80", "Pédicure-Podologue", 15, 0.70, False, 0.95, "CNOPP"),
    Profession("91", "Orthophoniste", 25, 0.97, False, 0.80, "ARS"),
    Profession("92", "Orthoptiste", 6, 0.85, False, 0.50, "ARS"),
    Profession("26", "Audioprothésiste", 5, 0.50, False, 0.30, "ARS"),
    Profession("28", "Opticien-Lunetier", 20, 0.55, True, 0.20, "ARS"),
    Profession("93", "Psychologue", 50, 0.85, True, 0.40, "ARS"),
    Profession("94", "Ergothérapeute", 12, 0.85, True, 0.15, "ARS"),
    Profession("95", "Diététicien", 10, 0.90, True, 0.30, "ARS"),
    Profession("96", "Psychomotricien", 10, 0.88, True, 0.30, "ARS"),
    Profession("98", "Manipulateur ERM", 30, 0.70, True, 0.02, "ARS"),
)

#: TRE_R38-SpecialiteOrdinale (code, label, weight) drawn for médecins and dentists.
SAVOIR_FAIRE_MEDECIN: Final = (
    ("SM54", "Médecine générale (SM)", 300),
    ("SM26", "Qualifié en Médecine générale (SM)", 120),
    ("SM53", "Spécialiste en Médecine générale (SM)", 60),
    ("SM02", "Anesthésie-réanimation (SM)", 50),
    ("SM42", "Psychiatrie (SM)", 50),
    ("SM04", "Cardiologie et Maladies vasculaires (SM)", 40),
    ("SM40", "Pédiatrie (SM)", 40),
    ("SM44", "Radio-diagnostic (SM)", 40),
    ("SM38", "Ophtalmologie (SM)", 30),
    ("SM20", "Gynécologie-obstétrique (SM)", 30),
    ("SM59", "Médecine d'urgence (SM)", 30),
    ("SM15", "Dermatologie et Vénéréologie (SM)", 20),
    ("SM24", "Gastro-entérologie et Hépatologie (SM)", 20),
    ("SM41", "Pneumologie (SM)", 20),
    ("SM32", "Neurologie (SM)", 20),
    ("SM48", "Rhumatologie (SM)", 20),
    ("SM18", "Gériatrie (SM)", 20),
    ("SM25", "Médecine du travail (SM)", 20),
    ("SM08", "Chirurgie orthopédique et Traumatologie (SM)", 20),
    ("SM14", "Chirurgie viscérale et digestive (SM)", 10),
    ("SM19", "Gynécologie médicale (SM)", 10),
    ("SM27", "Médecine interne (SM)", 10),
    ("SM30", "Néphrologie (SM)", 10),
    ("SM36", "Oncologie, option médicale (SM)", 10),
    ("SM39", "Oto-rhino-laryngologie (SM)", 10),
    ("SM12", "Chirurgie urologique (SM)", 10),
    ("SM03", "Biologie médicale (SM)", 10),
    ("SM49", "Santé publique et Médecine sociale (SM)", 5),
    ("SM01", "Anatomie et Cytologie pathologiques (SM)", 5),
)
SAVOIR_FAIRE_DENTISTE: Final = (
    ("", "", 900),
    ("SCD01", "Orthopédie dento-faciale (SCD)", 60),
    ("SCD02", "Chirurgie orale (SCD)", 25),
    ("SCD03", "Médecine bucco-dentaire (SCD)", 15),
)
_TYPE_SAVOIR_FAIRE: Final = ("S", "Spécialité ordinale")  # label not checked

#: TRE_R21-Fonction codes used (labels checked against the NOS CodeSystem).
FONCTIONS: Final = {
    "FON-01": "Titulaire de cabinet",
    "FON-02": "Associé dans une société d'exercice (SEL ou SCP)",
    "FON-03": "Titulaire d'officine",
    "FON-04": "Remplaçant du titulaire d'officine",
    "FON-05": "Adjoint",
    "FON-17": "Collaborateur",
    "FON-22": "Remplaçant, intérimaire, intermittent",
    "FON-41": "Biologiste médical",
    "FON-43": "Cadre de santé",
    "FON-47": "Etudiant remplaçant, adjoint",
    "FON-48": "Interne",
    "FON-AU": "Fonction non définie",
}

#: TRE_R02-SecteurActivite codes used (labels checked against JDV_J02).
SECTEURS: Final = {
    "SA01": "Etablissement public de santé",
    "SA02": "Hôpital militaire du Service de santé des armées",
    "SA03": "Etablissement privé PSPH",
    "SA04": "Etablissement privé non PSPH",
    "SA05": "Centre de santé",
    "SA07": "Cabinet individuel",
    "SA08": "Cabinet de groupe",
    "SA09": "Exercice en société",
    "SA17": "Etablissement pour personnes âgées",
    "SA25": "Laboratoire de biologie médicale",
    "SA33": "Pharmacie d'officine",
    "SA52": "Maison de santé ou Pôle de santé",
}

CIVILITES: Final = {"M": "Monsieur", "MME": "Madame"}
CIVILITES_EXERCICE: Final = {"DR": "Docteur", "PR": "Professeur"}
MODES: Final = {"L": "Libéral, indépendant, artisan, commerçant", "S": "Salarié", "B": "Bénévole"}
CATEGORIES: Final = {"C": "Civil", "E": "Etudiant", "M": "Militaire"}
GENRES: Final = {"GENR01": "Activité standard", "GENR03": "Remplacement dans une activité de soins"}
SECTIONS: Final = {
    "A": "Pharmacien titulaire officine",
    "D": "Pharmacien adjoint et autres",
    "G": "Pharmacien biologiste",
    "H": "Pharmacien des établissements de santé",
}
_TYPES_VOIE: Final = (
    ("R", "Rue", 50), ("AV", "Avenue", 18), ("BD", "Boulevard", 10), ("PL", "Place", 6),
    ("CHE", "Chemin", 5), ("ALL", "Allée", 4), ("IMP", "Impasse", 3), ("RTE", "Route", 2),
    ("QUAI", "Quai", 1), ("CRS", "Cours", 1),
)  # fmt: skip

# --------------------------------------------------------------------------------------------
# Places: (commune, COG code, postal code, département, its label, fiction phone prefix, weight)
# COG and postal codes of large communes written by hand from the INSEE COG and La Poste;
# Paris, Lyon and Marseille per arrondissement. Check before any other use.
# --------------------------------------------------------------------------------------------

# ARCEP numbers kept for fiction, by zone: 01 99 00, 02 61 91, 03 53 01, 04 65 71, 05 36 49;
# 06 39 98 for mobiles, 09 77 40 (non-geographic) overseas.
_PHONE_ZONES: Final = {
    "1": "019900", "2": "026191", "3": "035301", "4": "046571", "5": "053649", "9": "097740",
}  # fmt: skip
_MOBILE: Final = "063998"

_CITIES_TEXT: Final = """
TOULOUSE,31555,31000,31,Haute-Garonne,5,48
NICE,06088,06000,06,Alpes-Maritimes,4,34
NANTES,44109,44000,44,Loire-Atlantique,2,32
STRASBOURG,67482,67000,67,Bas-Rhin,3,29
MONTPELLIER,34172,34000,34,Hérault,4,30
BORDEAUX,33063,33000,33,Gironde,5,26
LILLE,59350,59000,59,Nord,3,24
RENNES,35238,35000,35,Ille-et-Vilaine,2,22
REIMS,51454,51100,51,Marne,3,18
LE HAVRE,76351,76600,76,Seine-Maritime,2,17
SAINT-ETIENNE,42218,42000,42,Loire,4,17
TOULON,83137,83000,83,Var,4,18
GRENOBLE,38185,38000,38,Isère,4,16
DIJON,21231,21000,21,Côte-d'Or,3,16
ANGERS,49007,49000,49,Maine-et-Loire,2,16
NIMES,30189,30000,30,Gard,4,15
CLERMONT-FERRAND,63113,63000,63,Puy-de-Dôme,4,15
LE MANS,72181,72000,72,Sarthe,2,14
BREST,29019,29200,29,Finistère,2,14
TOURS,37261,37000,37,Indre-et-Loire,2,14
AMIENS,80021,80000,80,Somme,3,13
LIMOGES,87085,87000,87,Haute-Vienne,5,13
METZ,57463,57000,57,Moselle,3,12
BESANCON,25056,25000,25,Doubs,3,12
PERPIGNAN,66136,66000,66,Pyrénées-Orientales,4,12
ORLEANS,45234,45000,45,Loiret,2,12
ROUEN,76540,76000,76,Seine-Maritime,2,11
CAEN,14118,14000,14,Calvados,2,11
NANCY,54395,54000,54,Meurthe-et-Moselle,3,10
MULHOUSE,68224,68100,68,Haut-Rhin,3,10
POITIERS,86194,86000,86,Vienne,5,9
PAU,64445,64000,64,Pyrénées-Atlantiques,5,8
LA ROCHELLE,17300,17000,17,Charente-Maritime,5,8
AVIGNON,84007,84000,84,Vaucluse,4,8
BOULOGNE-BILLANCOURT,92012,92100,92,Hauts-de-Seine,1,12
SAINT-DENIS,93066,93200,93,Seine-Saint-Denis,1,11
ARGENTEUIL,95018,95100,95,Val-d'Oise,1,10
CRETEIL,94028,94000,94,Val-de-Marne,1,9
VERSAILLES,78646,78000,78,Yvelines,1,9
AJACCIO,2A004,20000,2A,Corse-du-Sud,4,5
BASTIA,2B033,20200,2B,Haute-Corse,4,4
POINTE-A-PITRE,97120,97110,971,Guadeloupe,9,4
FORT-DE-FRANCE,97209,97200,972,Martinique,9,5
CAYENNE,97302,97300,973,Guyane,9,3
SAINT-DENIS,97411,97400,974,La Réunion,9,8
MAMOUDZOU,97611,97600,976,Mayotte,9,2
"""


@dataclass(frozen=True, slots=True)
class _Place:
    commune: str
    cog: str
    postal: str
    departement: str
    departement_label: str
    phone: str  # fiction prefix of 6 digits


def _places() -> tuple[_Place, ...]:
    """One entry per weight unit (a weighted draw is one index)."""
    drawn: list[_Place] = []
    for line in _CITIES_TEXT.strip().splitlines():
        commune, cog, postal, dep, dep_label, zone, weight = line.split(",")
        place = _Place(commune, cog, postal, dep, dep_label, _PHONE_ZONES[zone])
        drawn.extend([place] * int(weight))
    for arrondissement in range(1, 21):  # Paris: 120 in all
        drawn.extend(
            [_Place("PARIS", f"751{arrondissement:02d}", f"750{arrondissement:02d}", "75",
                    "Paris", _PHONE_ZONES["1"])] * 6
        )  # fmt: skip
    for arrondissement in range(1, 17):  # Marseille: 48
        drawn.extend(
            [_Place("MARSEILLE", f"132{arrondissement:02d}", f"130{arrondissement:02d}", "13",
                    "Bouches-du-Rhône", _PHONE_ZONES["4"])] * 3
        )  # fmt: skip
    for arrondissement in range(1, 10):  # Lyon: 36
        drawn.extend(
            [_Place("LYON", f"6938{arrondissement}", f"6900{arrondissement}", "69", "Rhône",
                    _PHONE_ZONES["4"])] * 4
        )  # fmt: skip
    return tuple(drawn)


_PLACES: Final = _places()

# --------------------------------------------------------------------------------------------
# Names (fictitious people; family names upper case without accents, first names as written)
# --------------------------------------------------------------------------------------------


def _split(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.replace("\n", ",").split(",") if n.strip())


_FAMILY: Final = _split("""
MARTIN,BERNARD,THOMAS,PETIT,ROBERT,RICHARD,DURAND,DUBOIS,MOREAU,LAURENT,SIMON,MICHEL,LEFEBVRE,
LEROY,ROUX,DAVID,BERTRAND,MOREL,FOURNIER,GIRARD,BONNET,DUPONT,LAMBERT,FONTAINE,ROUSSEAU,VINCENT,
MULLER,LEFEVRE,FAURE,ANDRE,MERCIER,BLANC,GUERIN,BOYER,GARNIER,CHEVALIER,FRANCOIS,LEGRAND,
GAUTHIER,GARCIA,PERRIN,ROBIN,CLEMENT,MORIN,NICOLAS,HENRY,ROUSSEL,MATHIEU,MASSON,MARCHAND,DUVAL,
DENIS,DUMONT,MARIE,LEMAIRE,NOEL,MEYER,DUFOUR,MEUNIER,BRUN,BLANCHARD,GIRAUD,JOLY,RIVIERE,LUCAS,
BRUNET,GAILLARD,BARBIER,ARNAUD,MARTINEZ,GERARD,ROCHE,RENARD,SCHMITT,ROY,LEROUX,COLIN,VIDAL,
CARON,PICARD,ROGER,FABRE,AUBERT,LEMOINE,RENAUD,DUMAS,LACROIX,OLIVIER,PHILIPPE,BOURGEOIS,PIERRE,
BENOIT,REY,LECLERC,PAYET,ROLLAND,LECOMTE,LOPEZ,JEAN,DUPUY,GUILLOT,HUBERT,BERGER,CARPENTIER,
SANCHEZ,DUPUIS,MOULIN,LOUIS,DESCHAMPS,HUET,VASSEUR,PEREZ,BOUCHER,FLEURY,ROYER,KLEIN,JACQUET,
ADAM,PARIS,POIRIER,MARTY,AUBRY,GUYOT,CARRE,CHARLES,RENAULT,CHARPENTIER,MENARD,MAILLARD,BARON,
BERTIN,BAILLY,HERVE,SCHNEIDER,FERNANDEZ,LE GALL,COLLET,LEGER,BOUVIER,JULIEN,PREVOST,MILLET,
PERROT,DANIEL,LE ROUX,COUSIN,GERMAIN,BRETON,BESSON,LANGLOIS,REMY,LE GOFF,PELLETIER,LEVEQUE,
PERRIER,LEBLANC,BARRE,LEBRUN,MARCHAL,WEBER,MALLET,HAMON,BOULANGER,JACOB,MONNIER,MICHAUD,
RODRIGUEZ,GUICHARD,GILLET,ETIENNE,GRONDIN,POULAIN,TESSIER,CHAUVIN,DA SILVA,BOUCHET,GAY,
LEMAITRE,BENARD,MARECHAL,HUMBERT,REYNAUD,ANTOINE,HOARAU,PERRET,BARTHELEMY,CORDIER,PICHON,
LEJEUNE,GILBERT,LAMY,DELAUNAY,PASQUIER,CARLIER,LAPORTE,NGUYEN,DOS SANTOS,FERREIRA,PEREIRA,
BENALI,HADDAD,DIALLO,TRAORE,COHEN,TRAN,KOWALSKI,ROSSI,ETCHEVERRY,KERGOAT,D'ALMEIDA,LE BIHAN,
SANTONI,MADEC,LE CORRE,MORVAN,SALAUN,HOFFMANN,WAGNER,KELLER,DELATTRE,DUHAMEL,LESAGE,PRIGENT,
""")
_FEMALE: Final = _split("""
Marie,Nathalie,Isabelle,Sylvie,Catherine,Christine,Valérie,Sandrine,Stéphanie,Céline,Aurélie,
Émilie,Julie,Camille,Claire,Hélène,Anne,Sophie,Laurence,Véronique,Florence,Élodie,Mélanie,
Audrey,Pauline,Laura,Marion,Charlotte,Léa,Manon,Chloé,Anaïs,Sarah,Inès,Clémence,Agnès,
Béatrice,Cécile,Delphine,Virginie,Karine,Caroline,Amélie,Noémie,Océane,Maëlle,Léna,Justine,
Margaux,Lucie,Alice,Élise,Mathilde,Juliette,Françoise,Martine,Brigitte,Dominique,Chantal,
Anne-Sophie,Marie-Claire,Fatima,Yasmina,Ophélie,Gaëlle,Séverine,Solène,Bérénice,Maïwenn,
""")
_MALE: Final = _split("""
Jean,Pierre,Philippe,Michel,Alain,Patrick,François,Éric,Thierry,Laurent,Christophe,Stéphane,
Frédéric,Olivier,Nicolas,Sébastien,Julien,Guillaume,Thomas,Maxime,Antoine,Alexandre,Romain,
Jérôme,Vincent,David,Benoît,Cédric,Damien,Mathieu,Florian,Clément,Hugo,Lucas,Théo,Louis,Paul,
Arnaud,Bruno,Pascal,Didier,Gilles,Hervé,Yves,Denis,Jean-Pierre,Jean-François,Jean-Marc,Marc,
Xavier,Fabrice,Franck,Ludovic,Grégoire,Rémi,Loïc,Gaël,Adrien,Bastien,Quentin,Mehdi,Karim,
Joël,Noël,Jérémy,Aurélien,Raphaël,Mickaël,Anthony,Baptiste,
""")
_STREETS: Final = _split("""
DE LA REPUBLIQUE,VICTOR HUGO,JEAN JAURES,DU GENERAL DE GAULLE,PASTEUR,GAMBETTA,DE LA GARE,
DES ECOLES,DU MARECHAL FOCH,NATIONALE,DE LA LIBERATION,DU 8 MAI 1945,DE L'EGLISE,DU MOULIN,
DES LILAS,JULES FERRY,CARNOT,DE PARIS,DU CHATEAU,DES TILLEULS,SAINT-MARTIN,DE LA PAIX,
ANATOLE FRANCE,DU PRESIDENT WILSON,EMILE ZOLA,DE VERDUN,DE LA MAIRIE,DES ROSIERS,DU PORT,
DU GENERAL LECLERC,ALBERT CAMUS,DE STRASBOURG,DE LA FONTAINE,DU STADE,DES ACACIAS,
GEORGES CLEMENCEAU,JEAN MOULIN,DE LYON,DES FLEURS,DU COMMERCE,
""")
_QUALIFIERS: Final = _split("""
DU CENTRE,DE LA GARE,DES TILLEULS,DU PARC,DES HALLES,DU MARCHE,DES ACACIAS,DU LAC,BELLEVUE,
DU PONT,DE LA FONTAINE,DES CEDRES,DU CHATEAU,SAINT-MARTIN,DE LA PLACE,DES QUATRE VENTS,
""")
_SAINTS: Final = _split("""
SAINT-JOSEPH,SAINTE-MARIE,DU PARC,DES CEDRES,LES LILAS,DU MAIL,BELLEVUE,PASTEUR,MONTAIGNE,
DU LAC,SAINT-LOUIS,SAINTE-ANNE,DE L'ESPERANCE,LES ORCHIDEES,
""")
_SERVICES: Final = _split("""
SERVICE DE CARDIOLOGIE,SERVICE DES URGENCES,SERVICE DE PEDIATRIE,SERVICE DE GERIATRIE,
SERVICE DE MEDECINE INTERNE,SERVICE DE CHIRURGIE,SERVICE DE PSYCHIATRIE,PHARMACIE A USAGE INTERIEUR,
SERVICE DE RADIOLOGIE,SERVICE DE MATERNITE,SERVICE DE REANIMATION,SERVICE DE PNEUMOLOGIE,
""")
_GEO: Final = _split("""
BATIMENT A,BATIMENT B,RESIDENCE LES PINS,1ER ETAGE,2EME ETAGE,ZONE D'ACTIVITE DU MOULIN,
CENTRE COMMERCIAL,ESPACE SANTE,
""")


def _unaccented_upper(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).upper()


_FIRST_UPPER: Final = {n: _unaccented_upper(n) for n in _FEMALE + _MALE}


def _weighted(items: Iterable[tuple[str, str, int]]) -> tuple[tuple[str, str], ...]:
    return tuple((code, label) for code, label, weight in items for _ in range(weight))


_PROFESSION_DRAW: Final = tuple(p for p in PROFESSIONS for _ in range(p.weight))
_SF_MEDECIN_DRAW: Final = _weighted(SAVOIR_FAIRE_MEDECIN)
_SF_DENTISTE_DRAW: Final = _weighted(SAVOIR_FAIRE_DENTISTE)
_VOIE_DRAW: Final = _weighted(_TYPES_VOIE)
_EMAIL_DOMAINS: Final = ("example.org", "example.com", "example.net")
_SLUG: Final = str.maketrans(" '", "--")
#: Autorité d'enregistrement as written in the file (the three levels, as in a PSC sample).
_AUTHORITIES: Final = {p.code: "/".join([p.authority] * 3) for p in PROFESSIONS}


def _luhn_table() -> tuple[int, ...]:
    """Luhn sum of every 4-digit block whose last digit is doubled (digits to the left of a key)."""
    doubled = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)
    return tuple(
        doubled[n % 10] + (n // 10) % 10 + doubled[(n // 100) % 10] + n // 1000
        for n in range(10_000)
    )


_LUHN4: Final = _luhn_table()


def luhn_key(body: str) -> str:
    """The Luhn check digit of a string of digits: ``stdnum.luhn.calc_check_digit``, table-driven.

    The synthesiser draws a key for every person and structure; python-stdnum's loop over the
    characters was a third of the time. The tests check both agree.
    https://arthurdejong.org/python-stdnum/
    """
    total = 0
    end = len(body)
    while end > 0:
        start = end - 4 if end > 4 else 0
        total += _LUHN4[int(body[start:end])]
        end = start
    return str(-total % 10)


# --------------------------------------------------------------------------------------------
# Structures
# --------------------------------------------------------------------------------------------

_EMPTY2: Final = ("", "")
#: Salaried activities: (structure kind, weight) per profession code (default: "*").
_SALARIED_IN: Final = {
    "10": (("hopital", 75), ("centre", 12), ("ehpad", 5), ("labo", 3), ("msp", 5)),
    "21": (("officine", 55), ("hopital", 35), ("labo", 10)),
    "40": (("centre", 70), ("hopital", 30)),
    "60": (("hopital", 70), ("ehpad", 20), ("centre", 10)),
    "70": (("hopital", 60), ("ehpad", 40)),
    "*": (("hopital", 60), ("centre", 20), ("ehpad", 20)),
}
_SALARIED_DRAW: Final = {
    code: tuple(kind for kind, weight in kinds for _ in range(weight))
    for code, kinds in _SALARIED_IN.items()
}
#: Pool size of each shared structure kind: grows with the people drawn so far (one structure
#: per ``ratio`` people, at least ``least``, at most ``most``), so runs stay prefixes.
_POOLS: Final = {
    "groupe": (20, 8, 20_000),
    "msp": (5, 120, 3_000),
    "officine": (10, 40, 20_000),
    "hopital": (5, 250, 4_000),
    "hia": (2, 5_000, 10),
    "centre": (5, 150, 5_000),
    "ehpad": (5, 150, 8_000),
    "labo": (3, 600, 1_500),
}
_GROUP_NAMES: Final = {
    "10": ("CABINET MEDICAL", "SCM DES MEDECINS", "SELARL MEDICALE"),
    "40": ("CABINET DENTAIRE", "SCM DES CHIRURGIENS-DENTISTES", "SELARL DENTAIRE"),
    "50": ("CABINET DE SAGES-FEMMES",),
    "60": ("CABINET INFIRMIER", "SCM DES INFIRMIERS"),
    "70": ("CABINET DE KINESITHERAPIE", "SCM DES KINESITHERAPEUTES", "SELARL DE KINESITHERAPIE"),
    "80": ("CABINET DE PODOLOGIE",),
    "91": ("CABINET D'ORTHOPHONIE",),
    "93": ("CABINET DE PSYCHOLOGIE",),
}


@dataclass(slots=True)
class _Structure:
    """Cells 20-47 of a row (SIRET ... ancien identifiant) and the secteur d'activité."""

    cells: tuple[str, ...]
    secteur: tuple[str, str]


class _Synth:
    """The drawing state of one :func:`synthesize` run."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.rand = self.rng.random
        mix = random.Random(seed ^ 0x5EED_A77)
        self.rpps_offset = mix.randrange(10**8)
        self.adeli_offset = mix.randrange(10**7)
        self.siren_offset = mix.randrange(10**8)
        self.finess_offset = mix.randrange(10**6)
        self.pools: dict[tuple[str, int], _Structure] = {}
        self.serial = 0  # structures created so far (technical ids, SIREN, FINESS)
        self.overseas: dict[str, int] = {}  # FINESS numbers drawn per overseas département
        self.people = 0

    # small draws -------------------------------------------------------------------------

    def pick(self, items: tuple[_T, ...]) -> _T:
        return items[int(self.rand() * len(items))]

    def digits(self, count: int) -> str:
        return f"{int(self.rand() * 10**count):0{count}d}"

    def phone(self, place: _Place) -> str:
        return place.phone + self.digits(4)

    # identifiers -------------------------------------------------------------------------

    def siret(self) -> tuple[str, str]:
        """(SIRET, SIREN), unique per structure (an affine permutation of the serial)."""
        body = str(10**7 + (self.siren_offset + 48_271 * self.serial) % (9 * 10**7))
        siren = body + luhn_key(body)
        nic = f"{1 + int(self.rand() * 30):04d}"
        return siren + nic + luhn_key(siren + nic), siren

    def finess(self, place: _Place) -> str:
        """A FINESS-shaped number in the place's département, unique per structure.

        Luhn key over the first 8 characters; overseas numbers start with 970 + the last digit
        of the département (as in a third-party validator, not checked); Corsica (2A/2B) gets a
        random key since no reliable rule was found.
        """
        dep = place.departement
        if dep.startswith("97"):
            count = self.overseas[dep] = self.overseas.get(dep, 0) + 1
            head = f"970{dep[2]}{(self.finess_offset + 7_919 * count) % 10**4:04d}"
        else:
            head = f"{dep}{(self.finess_offset + 7_919 * self.serial) % 10**6:06d}"
        if not head.isdigit():
            return head + str(int(self.rand() * 10))
        return head + luhn_key(head)

    # structures --------------------------------------------------------------------------

    def address(self, place: _Place, cedex: bool) -> tuple[str, ...]:
        """Cells 27-46: complément … libellé département (20 cells)."""
        rand = self.rand
        code_voie, label_voie = self.pick(_VOIE_DRAW)
        numero = str(1 + int(rand() * 150)) if rand() < 0.92 else ""
        indice = ("B" if rand() < 0.8 else "T") if numero and rand() < 0.05 else ""
        geo = self.pick(_GEO) if rand() < 0.1 else ""
        mention = ""
        bureau = f"{place.postal} {place.commune}"
        if cedex and rand() < 0.4:
            mention = f"{'BP' if rand() < 0.6 else 'CS'} {10 + int(rand() * 9_980)}"
            bureau += " CEDEX"
        r = rand()
        return (
            "",  # complément destinataire (set per activity for hospitals)
            geo,
            numero,
            indice,
            code_voie,
            label_voie,
            self.pick(_STREETS),
            mention,
            bureau,
            place.postal,
            place.cog,
            place.commune,
            "99000",
            "France",
            self.phone(place) if r < 0.85 else "",
            _MOBILE + self.digits(4) if rand() < 0.15 else "",
            self.phone(place) if rand() < (0.5 if cedex else 0.15) else "",
            "",  # e-mail, set by the caller (it knows the name)
            place.departement,
            place.departement_label,
        )

    def structure(
        self, kind: str, profession: str, place: _Place, owner: tuple[str, str, str]
    ) -> _Structure:
        """A new structure of ``kind`` (``owner`` = IDNPS, first name, family name)."""
        self.serial += 1
        rand = self.rand
        siret, siren = self.siret()
        finess = finess_ej = ""
        technique = f"R{10_000_000 + self.serial}"
        idnps, first, family = owner
        ancien = ""
        cedex = False
        enseigne = ""
        if kind == "cabinet":
            title = "DR " if profession in ("10", "40") else ""
            name = (
                f"CABINET DU {title}{_FIRST_UPPER[first]} {family}"
                if title
                else (f"CABINET {_FIRST_UPPER[first]} {family}")
            )
            secteur = "SA07"
            if rand() >= 0.4:
                siret = siren = ""
            # cabinet of a person: 4 + RPPS + rang, or 0 + ADELI (domain-spec idNatStruct)
            ancien = ("4" + idnps[1:] + "001") if idnps[0] == "8" else idnps
        elif kind == "groupe":
            prefixes = _GROUP_NAMES.get(profession, ("CABINET",))
            prefix = self.pick(prefixes)
            name = f"{prefix} {self.pick(_QUALIFIERS)}"
            secteur = "SA09" if prefix.startswith("SEL") else "SA08"
            ancien = "3" + siret
        elif kind == "msp":
            name = f"MAISON DE SANTE PLURIPROFESSIONNELLE {self.pick(_QUALIFIERS)}"
            secteur = "SA52"
            ancien = "3" + siret
        else:
            finess = self.finess(place)
            self.serial += 1
            finess_ej = self.finess(place)
            technique = f"F{finess}{1 + int(rand() * 28):02d}{1 + int(rand() * 12):02d}"
            technique += str(1995 + int(rand() * 30))
            ancien = "1" + finess
            cedex = kind in ("hopital", "hia")
            commune = place.commune
            if kind == "officine":
                name = (
                    f"PHARMACIE {self.pick(_QUALIFIERS)}"
                    if rand() < 0.7
                    else f"PHARMACIE {self.pick(_FAMILY)}"
                )
                enseigne = f"GRANDE PHARMACIE DE {commune}" if rand() < 0.1 else ""
                secteur = "SA33"
            elif kind == "hopital":
                r = rand()
                if r < 0.55:
                    name = f"CENTRE HOSPITALIER DE {commune}"
                    secteur = "SA01"
                elif r < 0.7:
                    name = f"CENTRE HOSPITALIER UNIVERSITAIRE DE {commune}"
                    secteur = "SA01"
                elif r < 0.8:
                    name = f"HOPITAL {self.pick(_SAINTS)}"
                    secteur = "SA03"
                else:
                    name = f"{'CLINIQUE' if rand() < 0.6 else 'POLYCLINIQUE'} {self.pick(_SAINTS)}"
                    secteur = "SA04"
            elif kind == "hia":
                name = f"HOPITAL D'INSTRUCTION DES ARMEES {self.pick(_SAINTS)}"
                secteur = "SA02"
            elif kind == "centre":
                name = (
                    f"CENTRE DE SANTE MUNICIPAL DE {commune}"
                    if rand() < 0.3
                    else f"CENTRE DE SANTE {self.pick(_QUALIFIERS)}"
                )
                secteur = "SA05"
            elif kind == "ehpad":
                name = f"EHPAD {'RESIDENCE ' if rand() < 0.5 else ''}{self.pick(_SAINTS)}"
                secteur = "SA17"
            else:  # labo
                name = f"LABORATOIRE DE BIOLOGIE MEDICALE {self.pick(_QUALIFIERS)}"
                secteur = "SA25"
        address = self.address(place, cedex)
        if rand() < 0.35:
            local = "contact" if rand() < 0.5 else "secretariat"
            slug = name.lower().translate(_SLUG)[:40].strip("-")
            email = f"{local}.{slug}@{self.pick(_EMAIL_DOMAINS)}"
            address = (*address[:17], email, *address[18:])
        cells = (siret, siren, finess, finess_ej, technique, name, enseigne, *address, ancien)
        return _Structure(cells, (secteur, SECTEURS[secteur]))

    def shared(self, kind: str, profession: str) -> _Structure:
        """A structure from the pool of ``kind`` (created the first time it is drawn)."""
        least, ratio, most = _POOLS[kind]
        size = min(most, max(least, self.people // ratio))
        key_profession = profession if kind == "groupe" else ""
        index = int(self.rand() * size)
        key = (kind + key_profession, index)
        found = self.pools.get(key)
        if found is None:
            owner = ("", "", self.pick(_FAMILY))
            found = self.structure(kind, profession, self.pick(_PLACES), owner)
            self.pools[key] = found
        return found

    # people ------------------------------------------------------------------------------

    def person(self) -> tuple[tuple[str, ...], Profession, str, str, str]:
        """(cells 1-17, profession, category code, first name, family name) of a new person."""
        index = self.people
        self.people += 1
        rand = self.rand
        prof = _PROFESSION_DRAW[int(rand() * len(_PROFESSION_DRAW))]
        female = rand() < prof.female
        firsts = _FEMALE if female else _MALE
        first = firsts[int(rand() * len(firsts))]
        family = _FAMILY[int(rand() * len(_FAMILY))]
        if rand() < 0.03:
            family = f"{family}-{self.pick(_FAMILY)}"
        if prof.adeli:
            kind = "0"
            ident = (
                f"{self.pick(_PLACES).departement[:2].replace('A', '0').replace('B', '0')}"
                f"{(self.adeli_offset + 7_654_321 * index) % 10**7:07d}"
            )
        else:
            kind = "8"
            body = f"10{(self.rpps_offset + 7_654_321 * index) % 10**8:08d}"
            ident = body + luhn_key(body)
        r = rand()
        category = "C"
        if prof.code in ("10", "21", "40", "50") and r < 0.05:
            category = "E"
        elif prof.code in ("10", "21", "60") and r > 0.99:
            category = "M"
        civ_ex = ""
        if prof.code in ("10", "21", "40") and category != "E":
            civ_ex = "PR" if prof.code == "10" and rand() < 0.02 else "DR"
        sf: tuple[str, str] = _EMPTY2
        if category != "E":
            if prof.code == "10":
                sf = self.pick(_SF_MEDECIN_DRAW)
            elif prof.code == "40":
                sf = self.pick(_SF_DENTISTE_DRAW)
        type_sf = _TYPE_SAVOIR_FAIRE if sf[0] else _EMPTY2
        civ = "MME" if female else "M"
        cells = (
            kind,
            ident,
            kind + ident,
            civ_ex,
            CIVILITES_EXERCICE.get(civ_ex, ""),
            civ,
            CIVILITES[civ],
            family,
            first,
            prof.code,
            prof.label,
            category,
            CATEGORIES[category],
            *type_sf,
            *sf,
        )
        return cells, prof, category, first, family

    def activity(
        self, prof: Profession, category: str, idnps: str, first: str, family: str
    ) -> tuple[str, ...]:
        """Cells 18-56 of one activity of the person."""
        rand = self.rand
        code = prof.code
        r = rand()
        mode = "B" if r < 0.01 else ("L" if r < 0.01 + prof.liberal else "S")
        if category == "M":
            mode = "S"
        fonction = ""
        genre = "GENR01"
        section = ""
        complement = ""
        if mode == "L":
            if code == "21":
                structure = self.shared("officine", code)
                fonction = "FON-03"
            else:
                r = rand()
                if r < 0.45:
                    place = _PLACES[int(rand() * len(_PLACES))]
                    structure = self.structure("cabinet", code, place, (idnps, first, family))
                    fonction = "FON-01"
                elif r < 0.9:
                    structure = self.shared("groupe", code)
                    fonction = (
                        "FON-02" if rand() < 0.5 else ("FON-01" if rand() < 0.6 else "FON-17")
                    )
                else:
                    structure = self.shared("msp", code)
                    fonction = "FON-01"
            if category == "E":
                fonction, genre = "FON-47", "GENR03"
            elif rand() < 0.05:
                fonction, genre = ("FON-04" if code == "21" else "FON-22"), "GENR03"
            if code == "21":
                section = "A" if fonction == "FON-03" else "D"
        else:
            if category == "M":
                kind = "hia"
            elif mode == "B":
                kind = "centre"
            else:
                kind = self.pick(_SALARIED_DRAW.get(code, _SALARIED_DRAW["*"]))
            structure = self.shared(kind, code)
            if kind == "hopital" or kind == "hia":
                complement = self.pick(_SERVICES)
            if code == "21":
                section = {"officine": "D", "labo": "G"}.get(kind, "H")
            if category == "E":
                fonction = "FON-48" if code == "10" else "FON-47"
            elif code == "21":
                fonction = {"officine": "FON-05", "labo": "FON-41"}.get(kind, "FON-AU")
            elif code == "10" and kind == "labo":
                fonction = "FON-41"
            elif code == "60" and rand() < 0.05:
                fonction = "FON-43"
            elif rand() < 0.5:
                fonction = "FON-AU"
        cells = structure.cells
        if complement:
            cells = (*cells[:7], complement, *cells[8:])
        tail = _TAILS.get((section, fonction, genre))
        if tail is None:
            tail = (section, SECTIONS.get(section, ""), fonction, FONCTIONS.get(fonction, ""))
            tail = _TAILS[section, fonction, genre] = (*tail, genre, GENRES[genre])
        return _MODE_CELLS[mode] + cells + (_AUTHORITIES[code], *structure.secteur) + tail


#: (section, fonction, genre) -> their six cells with labels, filled as met.
_TAILS: dict[tuple[str, str, str], tuple[str, ...]] = {}
_MODE_CELLS: Final = {code: (code, label) for code, label in MODES.items()}


def synthesize(n_rows: int, seed: int) -> Iterator[dict[str, str]]:
    """``n_rows`` synthetic extraction rows keyed by :data:`ACTIVITE_COLUMNS` (test data only).

    About one person in five has several activities (rows with the same IDNPS).
    https://annuaire.sante.fr/web/site-pro/extractions-publiques
    """
    synth = _Synth(seed)
    rand = synth.rand
    columns = ACTIVITE_COLUMNS
    emitted = 0
    while emitted < n_rows:
        person, prof, category, first, family = synth.person()
        r = rand()
        count = 1 if r < 0.8 else (2 if r < 0.95 else 3)
        for _ in range(min(count, n_rows - emitted)):
            activity = synth.activity(prof, category, person[2], first, family)
            yield dict(zip(columns, person + activity, strict=False))  # both built to 56
            emitted += 1


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def extraction_name(generated_at: datetime) -> str:
    """The published file name, ``PS_LibreAcces_Personne_activite_<YYYYMMDDhhmm>.txt``.

    https://annuaire.sante.fr/web/site-pro/extractions-publiques
    """
    return f"{ACTIVITE_PREFIX}_{generated_at:%Y%m%d%H%M}.txt"


def write_extraction(
    rows: Iterable[Mapping[str, str]],
    path: str | Path,
    *,
    encoding: str = "utf-8",
    generated_at: datetime | None = None,
) -> Path:
    """Write ``rows`` in the official layout to a ``.txt``, or a ``.zip`` holding the named file.

    ``generated_at`` (default: now) names the zip member and dates it. Returns ``path``.
    https://annuaire.sante.fr/web/site-pro/extractions-publiques
    """
    target = Path(path)
    stamp = generated_at or datetime.now()
    with published_text(target, extraction_name(stamp), stamp, encoding) as text:
        _write_rows(rows, text)
    return target


@contextmanager
def published_text(path: Path, member: str, stamp: datetime, encoding: str) -> Iterator[IO[str]]:
    """A text stream writing ``path``: the file itself, or, for a ``.zip``, its one member
    ``member`` dated ``stamp``, as the extractions are published.

    https://annuaire.sante.fr/web/site-pro/extractions-publiques
    """
    if path.suffix.lower() != ".zip":
        with path.open("w", encoding=encoding, newline="") as text:
            yield text
        return
    info = zipfile.ZipInfo(member, date_time=stamp.timetuple()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    with (
        zipfile.ZipFile(path, "w") as archive,
        archive.open(info, "w", force_zip64=True) as raw,
        io.TextIOWrapper(raw, encoding=encoding, newline="") as text,
    ):
        yield text


def _write_rows(rows: Iterable[Mapping[str, str]], out: IO[str]) -> None:
    """Header and rows, ``|``-separated with a trailing ``|``, ``\\n`` line ends."""
    width = len(ACTIVITE_COLUMNS)
    out.write("|".join(ACTIVITE_COLUMNS) + "|\n")
    cells = itemgetter(*ACTIVITE_COLUMNS)
    batch: list[str] = []
    for number, row in enumerate(rows, start=2):
        try:
            line = "|".join(cells(row)) + "|\n"
        except KeyError as exc:
            raise ValueError(f"row for line {number} has no column {exc}") from None
        if line.count("|") != width or line.count("\n") != 1 or "\r" in line:
            raise ValueError(f"row for line {number} has a value holding '|' or a line break")
        batch.append(line)
        if len(batch) >= 4096:
            out.write("".join(batch))
            batch.clear()
    out.write("".join(batch))
