"""Synthetic French demo data (test identities only, never real patients)."""

from maison.services.demo.synthetic import (
    INS_NIR_TEST_SYSTEM,
    IPP_SYSTEM,
    bundle_references,
    bundle_rng,
    demo_bundles,
    individual_resources,
    make_nir,
    patient_bundle,
)

__all__ = [
    "INS_NIR_TEST_SYSTEM",
    "IPP_SYSTEM",
    "bundle_references",
    "bundle_rng",
    "demo_bundles",
    "individual_resources",
    "make_nir",
    "patient_bundle",
]
