"""Annuaire Santé: the RPPS/ADELI open-data extraction, read and synthesised."""
