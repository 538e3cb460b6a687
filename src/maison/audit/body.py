"""How an AuditEvent body is stored: compact JSON, deflated with a frozen preset dictionary, then
encrypted with the store's data keys (AES-256-GCM) bound to its seq.

AuditEvents repeat the same systems, codes and keys; deflate (RFC 1951) primed with a
dictionary of typical events (RFC 1950 §2.2, ``zdict``) stores one in about a tenth of its JSON
size, which is what makes a 10-million entry trail a few GB and ``verify`` disk-bound no more.
The dictionary is part of the storage format: never edit ``_ZDICT_V1``; add a version instead.

https://www.rfc-editor.org/rfc/rfc1951, https://hl7.org/fhir/R4/auditevent.html
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any, Final

import orjson

from maison.store.crypto import Keyring

_V1: Final = b"\x01"  # deflate (raw, level 6) with _ZDICT_V1

_ZDICT_V1: Final = (
    b'{"resourceType":"AuditEvent","type":{"system":"http://dicom.nema.org/resources/ontology/DC'
    b'M","code":"110113","display":"Security Alert"},"subtype":[{"system":"http://dicom.nema.org'
    b'/resources/ontology/DCM","code":"110127","display":"Emergency Override Started"},{"system"'
    b':"https://maison.example.org/fhir/CodeSystem/audit-kind","code":"break-glass"}],"action":"'
    b'E","recorded":"2026-01-01T00:00:00.000000Z","outcome":"0","outcomeDesc":"x","purposeOfEven'
    b't":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActReason","code":"BTG"'
    b',"display":"break the glass"}]}],"agent":[{"type":{"coding":[{"system":"http://dicom.nema.'
    b'org/resources/ontology/DCM","code":"110150","display":"Application"}]},"who":{"identifier"'
    b':{"value":"c"}},"requestor":false},{"type":{"coding":[{"system":"http://terminology.hl7.or'
    b'g/CodeSystem/v3-ParticipationType","code":"IRCP","display":"information recipient"}]},"req'
    b'uestor":true,"who":{"identifier":{"system":"urn:oid:1.2.250.1.71.4.2.1","value":"8"},"refe'
    b'rence":"Practitioner/"},"role":[{"coding":[{"system":"https://mos.esante.gouv.fr/NOS/TRE_G'
    b'15-ProfessionSante/FHIR/TRE-G15-ProfessionSante","code":"10"}]}],"purposeOfUse":[{"coding"'
    b':[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActReason","code":"BTG","display":"b'
    b'reak the glass"}]}]},{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v'
    b'3-RoleClass","code":"PROV","display":"healthcare provider"}]},"who":{"identifier":{"system'
    b'":"https://finess.esante.gouv.fr","value":"7"}},"requestor":false}],"source":{"site":"mais'
    b'on","observer":{"display":"maison"},"type":[{"system":"http://terminology.hl7.org/CodeSyst'
    b'em/security-source-type","code":"4","display":"Application Server"}]},"entity":[{"what":{"'
    b'reference":"Patient/"},"type":{"system":"http://terminology.hl7.org/CodeSystem/audit-entit'
    b'y-type","code":"1","display":"Person"},"role":{"system":"http://terminology.hl7.org/CodeSy'
    b'stem/object-role","code":"1","display":"Patient"}}]}{"resourceType":"AuditEvent","type":{"'
    b'system":"http://terminology.hl7.org/CodeSystem/audit-event-type","code":"rest","display":"'
    b'Restful Operation"},"subtype":[{"system":"http://hl7.org/fhir/restful-interaction","code":'
    b'"read"},{"system":"https://maison.example.org/fhir/CodeSystem/audit-kind","code":"denial"}'
    b'],"action":"R","recorded":"2026-01-01T00:00:00.000000Z","outcome":"4","outcomeDesc":"t","a'
    b'gent":[{"type":{"coding":[{"system":"http://dicom.nema.org/resources/ontology/DCM","code":'
    b'"110150","display":"Application"}]},"who":{"identifier":{"value":"c"}},"requestor":false,"'
    b'network":{"address":"192.0.2.1","type":"2"}},{"type":{"coding":[{"system":"http://terminol'
    b'ogy.hl7.org/CodeSystem/v3-ParticipationType","code":"IRCP","display":"information recipien'
    b't"}]},"requestor":true,"who":{"identifier":{"system":"urn:oid:1.2.250.1.71.4.2.1","value":'
    b'"8"},"reference":"Practitioner/"},"role":[{"coding":[{"system":"https://mos.esante.gouv.fr'
    b'/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante","code":"10"}]}]},{"type":{"codi'
    b'ng":[{"system":"http://terminology.hl7.org/CodeSystem/v3-RoleClass","code":"PROV","display'
    b'":"healthcare provider"}]},"who":{"identifier":{"system":"https://finess.esante.gouv.fr","'
    b'value":"7"}},"requestor":false}],"source":{"site":"maison","observer":{"display":"maison"}'
    b',"type":[{"system":"http://terminology.hl7.org/CodeSystem/security-source-type","code":"4"'
    b',"display":"Application Server"}]},"entity":[{"what":{"reference":"Patient/"},"type":{"sys'
    b'tem":"http://terminology.hl7.org/CodeSystem/audit-entity-type","code":"1","display":"Perso'
    b'n"},"role":{"system":"http://terminology.hl7.org/CodeSystem/object-role","code":"1","displ'
    b'ay":"Patient"}},{"what":{"reference":"DocumentReference/"},"type":{"system":"http://termin'
    b'ology.hl7.org/CodeSystem/audit-entity-type","code":"2","display":"System Object"},"role":{'
    b'"system":"http://terminology.hl7.org/CodeSystem/object-role","code":"3","display":"Report"'
    b'}},{"type":{"system":"http://terminology.hl7.org/CodeSystem/audit-entity-type","code":"2",'
    b'"display":"System Object"},"role":{"system":"http://terminology.hl7.org/CodeSystem/object-'
    b'role","code":"24","display":"Query"},"description":"q","query":"cQ=="},{"what":{"identifie'
    b'r":{"value":"r"}},"type":{"system":"https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAudi'
    b'tEntityType","code":"XrequestId"}},{"type":{"system":"http://terminology.hl7.org/CodeSyste'
    b'm/audit-entity-type","code":"2","display":"System Object"},"role":{"system":"http://termin'
    b'ology.hl7.org/CodeSystem/object-role","code":"13","display":"Security Resource"},"what":{"'
    b'reference":"Consent/"},"name":"r","description":"t","detail":[{"type":"rule","valueString"'
    b':"r"},{"type":"cell","valueString":"c"},{"type":"consent","valueString":"Consent/"}]}]}{"r'
    b'esourceType":"AuditEvent","type":{"system":"http://terminology.hl7.org/CodeSystem/audit-ev'
    b'ent-type","code":"rest","display":"Restful Operation"},"subtype":[{"system":"http://hl7.or'
    b'g/fhir/restful-interaction","code":"read"},{"system":"https://maison.example.org/fhir/Code'
    b'System/audit-kind","code":"read"}],"action":"R","recorded":"2026-01-01T00:00:00.000000Z","'
    b'outcome":"0","agent":[{"type":{"coding":[{"system":"http://dicom.nema.org/resources/ontolo'
    b'gy/DCM","code":"110150","display":"Application"}]},"who":{"identifier":{"value":"c"}},"req'
    b'uestor":false,"network":{"address":"192.0.2.1","type":"2"}},{"type":{"coding":[{"system":"'
    b'http://terminology.hl7.org/CodeSystem/v3-ParticipationType","code":"IRCP","display":"infor'
    b'mation recipient"}]},"requestor":true,"who":{"identifier":{"system":"urn:oid:1.2.250.1.71.'
    b'4.2.1","value":"8"},"reference":"Practitioner/"},"role":[{"coding":[{"system":"https://mos'
    b'.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante","code":"10"}]}]}'
    b',{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-RoleClass","code":'
    b'"PROV","display":"healthcare provider"}]},"who":{"identifier":{"system":"https://finess.es'
    b'ante.gouv.fr","value":"7"}},"requestor":false}],"source":{"site":"maison","observer":{"dis'
    b'play":"maison"},"type":[{"system":"http://terminology.hl7.org/CodeSystem/security-source-t'
    b'ype","code":"4","display":"Application Server"}]},"entity":[{"what":{"reference":"Patient/'
    b'"},"type":{"system":"http://terminology.hl7.org/CodeSystem/audit-entity-type","code":"1","'
    b'display":"Person"},"role":{"system":"http://terminology.hl7.org/CodeSystem/object-role","c'
    b'ode":"1","display":"Patient"}},{"what":{"reference":"DocumentReference/"},"type":{"system"'
    b':"http://terminology.hl7.org/CodeSystem/audit-entity-type","code":"2","display":"System Ob'
    b'ject"},"role":{"system":"http://terminology.hl7.org/CodeSystem/object-role","code":"3","di'
    b'splay":"Report"}},{"what":{"identifier":{"value":"r"}},"type":{"system":"https://profiles.'
    b'ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType","code":"XrequestId"}},{"type":{"system":'
    b'"http://terminology.hl7.org/CodeSystem/audit-entity-type","code":"2","display":"System Obj'
    b'ect"},"role":{"system":"http://terminology.hl7.org/CodeSystem/object-role","code":"13","di'
    b'splay":"Security Resource"},"name":"r","detail":[{"type":"rule","valueString":"r"},{"type"'
    b':"cell","valueString":"c"}]}]}'
)


def aad(seq: int) -> bytes:
    """The associated data binding a body to its place in the chain."""
    return f"AuditEvent/{seq}".encode()


def seal(keyring: Keyring, event: Mapping[str, Any], seq: int) -> bytes:
    """The stored form of entry ``seq``'s event: deflated with the preset dictionary, encrypted
    (https://www.rfc-editor.org/rfc/rfc1951)."""
    packer = zlib.compressobj(6, zlib.DEFLATED, -15, zdict=_ZDICT_V1)
    packed = packer.compress(orjson.dumps(event)) + packer.flush()
    return keyring.encrypt(_V1 + packed, aad(seq))


def unseal(keyring: Keyring, blob: bytes, seq: int) -> dict[str, Any]:
    """The event stored by :func:`seal` (https://hl7.org/fhir/R4/auditevent.html)."""
    plain = keyring.decrypt(blob, aad(seq))
    if plain[:1] != _V1:
        raise ValueError(f"audit entry {seq}: unknown body format")
    unpacker = zlib.decompressobj(-15, zdict=_ZDICT_V1)
    event: dict[str, Any] = orjson.loads(unpacker.decompress(plain[1:]) + unpacker.flush())
    return event
