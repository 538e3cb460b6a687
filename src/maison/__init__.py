"""maison: the French maison de la e-santé socle services on a FHIR R4 server."""

__version__ = "0.1.0"
