"""Identité nationale de santé: matricule, traits, RNIV statuses, INSi, identity-vigilance.

https://esante.gouv.fr/produits-services/referentiel-ins
"""
