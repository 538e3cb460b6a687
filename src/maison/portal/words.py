"""The platform's reasons in French: the rule codes the API puts in an OperationOutcome's
``details`` (and ``$dmp-access``'s ``rule``) as sentences for the pages.

https://hl7.org/fhir/R4/operationoutcome-definitions.html#OperationOutcome.issue.details
"""

from __future__ import annotations

from collections.abc import Iterable

#: The access rules' reasons (``$dmp-access`` rule codes, security/access.py) in French.
RULE_WORDS = {
    "dmp-access:medecin-traitant": "vous êtes le médecin traitant DMP du patient",
    "dmp-access:care-team": "vous êtes membre d'une équipe de soins à laquelle le patient a "
    "donné son accord",
    "dmp-access:care-team-without-consent": "vous êtes membre d'une équipe de soins, mais le "
    "patient ne lui a pas encore donné son accord",
    "dmp-access:consent": "le patient vous a donné son consentement pour cette consultation",
    "dmp-access:bris-de-glace": "accès en urgence (bris de glace) en cours",
    "dmp-access:blocked": "le patient vous a bloqué",
    "dmp-access:opposition": "le patient s'est opposé à la consultation de son DMP",
    "dmp-access:emergency-opposed": "le patient s'est opposé à l'accès en urgence",
    "dmp-access:no-relationship": "aucune relation de soins n'est enregistrée (médecin traitant, "
    "équipe de soins, consentement ou bris de glace)",
    "dmp-access:state": "le DMP est fermé ou inactif",
    "dmp-access:regulation": "mode centre de régulation",
    "dmp-access:no-professional-context": "votre jeton ne porte pas de contexte professionnel",
    "dmp-access:inactive-professional": "vous n'êtes plus inscrit comme actif dans l'annuaire",
    "dmp-access:other-patient": "ce document appartient au dossier d'un autre patient",
    "habilitation-matrix:default-deny": "la matrice d'habilitation ne permet pas à votre "
    "profession de lire ce type de document",
    "habilitation-matrix:no-profession": "votre profession n'est pas connue : la matrice "
    "d'habilitation ne peut rien vous ouvrir",
    "dmp-block:professional": "seul le patient ou son représentant légal peut bloquer un "
    "professionnel",
    "dmp-consent:other-professional": "un professionnel ne recueille le consentement que pour "
    "lui-même",
    "dmp-mask:MASQUE_PS": "le patient a masqué ce document aux professionnels",
    "dmp-mask:INVISIBLE_PATIENT": "ce document n'est pas encore visible par le patient",
    "dmp-mask:INVISIBLE_REPRESENTANTS_LEGAUX": "ce document est masqué aux représentants légaux",
}


def rule_words(*codes: str | Iterable[str]) -> str:
    """The French sentence of the first known rule code, or an empty string."""
    for code in codes:
        for one in [code] if isinstance(code, str) else code:
            if one in RULE_WORDS:
                return RULE_WORDS[one]
            if one.startswith("habilitation-matrix:"):  # a cell: profession/type
                return (
                    "la matrice d'habilitation en décide pour votre profession (" + one[20:] + ")"
                )
    return ""
