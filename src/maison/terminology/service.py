"""The terminology source the server answers from: the extra sources given (the SQL store the
loaders fill) before the code systems, value sets and concept maps of the loaded definitions;
one :class:`PackageSource` per definitions object (a new one after a guide is installed), and
one process-wide expansion cache, keyed by the sources' content revisions.

https://hl7.org/fhir/R4/terminology-service.html
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence

from maison.fhir.definitions import Definitions
from maison.terminology.compose import ExpansionCache
from maison.terminology.packages import PackageSource
from maison.terminology.source import ChainedSource, TerminologySource

_lock = threading.Lock()
_packages: weakref.WeakKeyDictionary[Definitions, PackageSource] = weakref.WeakKeyDictionary()
_expansions = ExpansionCache()


def package_source(defs: Definitions) -> PackageSource:
    """The source over these definitions (built once per definitions object)
    (https://hl7.org/fhir/R4/terminology-service.html)."""
    found = _packages.get(defs)
    if found is None:
        with _lock:
            found = _packages.get(defs)
            if found is None:
                found = _packages[defs] = PackageSource(defs)
    return found


def terminology_source(defs: Definitions, extra: Sequence[TerminologySource] = ()) -> ChainedSource:
    """The extra sources, then the definitions' code systems, value sets and concept maps
    (https://hl7.org/fhir/R4/terminology-service.html)."""
    return ChainedSource([*extra, package_source(defs)])


def expansion_cache() -> ExpansionCache:
    """The process-wide cache of value set expansions
    (https://hl7.org/fhir/R4/valueset-operation-expand.html)."""
    return _expansions


__all__ = ["expansion_cache", "package_source", "terminology_source"]
