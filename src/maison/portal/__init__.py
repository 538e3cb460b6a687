"""The portal: a Mon espace santé-like space for patients and a professional space, in French,
served by the same process as a client of its own FHIR API."""
