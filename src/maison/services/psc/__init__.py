"""Pro Santé Connect: the professional context, the local PSC-compatible provider, the API
trust space (token exchange).

https://industriels.esante.gouv.fr/produits-et-services/pro-sante-connect
"""
