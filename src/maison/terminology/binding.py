"""Binding checks for the validator, answered by the terminology service: the value sets of
the installed packages and guides and those loaded with ``maison terminology load`` (NOS,
LOINC, SNOMED CT), with the code system aliases (the NOS TRE_A04 URL is LOINC) and the shared
expansion cache.

https://hl7.org/fhir/R4/terminologies.html#binding
"""

from __future__ import annotations

from maison.fhir.errors import FhirError
from maison.terminology.compose import Composer, Expansion, ExpansionCache
from maison.terminology.source import TerminologySource, canonical_system


class ServiceBindings:
    """What the validator asks to check a binding (``BindingTerminology``), over a source.

    https://hl7.org/fhir/R4/terminologies.html#binding
    """

    def __init__(self, source: TerminologySource, cache: ExpansionCache | None = None) -> None:
        self.source = source
        self.cache = cache

    def contains(self, value_set: str, system: str | None, code: str) -> bool | None:
        """Whether the value set holds the code (any system when ``system`` is None); None
        when it cannot be evaluated here (not loaded, too big, a code system not held).

        https://hl7.org/fhir/R4/valueset-operation-validate-code.html
        """
        url, _, version = value_set.partition("|")
        composer = Composer(self.source, self.cache)
        if url and composer.cache is not None:
            # a value set expanded before is answered from its expansion, without reading and
            # parsing the ValueSet again (the key holds the sources' content revision)
            cached = composer.cache.get((composer.revision, url, version or None))
            if isinstance(cached, Expansion):
                if system is not None:
                    return cached.get(canonical_system(system), code) is not None
                return any(entry.code == code for entry in cached.entries)
        vs = self.source.value_set(url, version or None)
        if vs is None:
            return None
        key = composer.key(vs, url, version or None)
        try:
            if system is not None:
                return composer.contains(vs, key, canonical_system(system), code) is not None
            expansion, _ = composer.evaluate(vs, key, None)
        except FhirError:  # not evaluable here: said as such, never a silent pass
            return None
        return any(entry.code == code for entry in expansion.entries)


__all__ = ["ServiceBindings"]
