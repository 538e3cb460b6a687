"""The portal's view of a CDA document: the ANS N1 sample's header in French, an N1 built by
``build_n1`` gives its PDF back, a structured CR-BIO-like document gives nested sections with
safe narrative HTML, hostile documents produce nothing dangerous, bad input is an error value
with a French message (hypothesis for arbitrary narrative text and arbitrary bytes), and every
TestContenuCDA example is shown or refused without an exception."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree
from markupsafe import Markup, escape

from maison.fhir.errors import Category
from maison.portal.cda_view import (
    MAX_SECTION_DEPTH,
    CdaView,
    CdaViewError,
    Section,
    cda_view,
    french_date,
    pdf_of,
)
from maison.services.dmp.cda import (
    CDA_NS,
    Author,
    CdaHeader,
    Coded,
    InstanceId,
    Organization,
    PatientRecord,
    ServiceEvent,
)
from maison.services.dmp.cda_build import build_n1, minimal_pdf
from support import CORPORA, SHARED

SAMPLE = (
    SHARED / "domain" / "data" / "cda" / "cda-header-example-ANS-DOC_NON_STRUCTURE_CDA-R2-N1.xml"
)
EXAMPLES = CORPORA / "TestContenuCDA-3-0" / "ExemplesCDA"

#: The HTML the view may produce: these tags, these attributes, nothing else.
ALLOWED_TAGS = {
    "p",
    "div",
    "ul",
    "ol",
    "li",
    "table",
    "caption",
    "col",
    "colgroup",
    "thead",
    "tbody",
    "tfoot",
    "tr",
    "th",
    "td",
    "span",
    "strong",
    "em",
    "u",
    "br",
    "sub",
    "sup",
    "a",
    "small",
}
ALLOWED_ATTRIBUTES = {"colspan", "rowspan", "href", "rel", "class"}
TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)((?:\s+[a-z]+=\"[^\"<>]*\")*)\s*>")
ATTRIBUTE = re.compile(r'([a-z]+)="([^"]*)"')


def assert_safe(html: str) -> None:
    """Every ``<`` opens a whitelisted tag with whitelisted attributes; an href is http(s)."""
    rest = html
    for match in TAG.finditer(html):
        _closing, tag, attrs = match.groups()
        assert tag in ALLOWED_TAGS, (tag, html)
        for name, value in ATTRIBUTE.findall(attrs):
            assert name in ALLOWED_ATTRIBUTES, (name, html)
            if name in ("colspan", "rowspan"):
                assert value.isdigit(), html
            if name == "href":
                assert re.match(r"https?://", value, re.IGNORECASE), html
        assert "javascript" not in match.group(0).lower(), html
        rest = rest.replace(match.group(0), "", 1)
    assert "<" not in rest, html
    assert ">" not in rest, html
    lowered = html.lower()
    for bad in ("<script", "<img", "<iframe", "<svg", "<style"):
        assert bad not in lowered, (bad, html)


def all_sections(sections: list[Section]) -> list[Section]:
    out: list[Section] = []
    for section in sections:
        out.append(section)
        out.extend(all_sections(section.children))
    return out


# --- documents written here ------------------------------------------------------------------

HEADER = """
  <realmCode code="FR"/>
  <typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>
  <templateId root="2.16.840.1.113883.2.8.2.1"/>
  <templateId root="1.2.250.1.213.1.1.1.1"/>
  <id root="1.2.250.1.999.3" extension="CRBIO-42"/>
  <code code="11502-2" codeSystem="2.16.840.1.113883.6.1" displayName="CR d'examens biologiques"/>
  <title>Compte rendu de biologie</title>
  <effectiveTime value="20250903081500+0200"/>
  <confidentialityCode code="{conf}" codeSystem="2.16.840.1.113883.5.25"/>
  <languageCode code="fr-FR"/>
  <recordTarget>
    <patientRole>
      <id root="1.2.250.1.213.1.4.10" extension="279035121518989"/>
      <patient classCode="PSN">
        <name>
          <family qualifier="BR">MARTIN</family>
          <given>Claire Anne</given>
          <given qualifier="BR">Claire</given>
        </name>
        <administrativeGenderCode code="F" codeSystem="2.16.840.1.113883.5.1"/>
        <birthTime value="19790328"/>
      </patient>
    </patientRole>
  </recordTarget>
  <author>
    <time value="20250903081500+0200"/>
    <assignedAuthor>
      <id root="1.2.250.1.71.4.2.1" extension="810000000001"/>
      <code code="G15_10/SM03" codeSystem="1.2.250.1.213.1.1.4.5"
            displayName="Médecin - Biologie médicale (SM)"/>
      <assignedPerson><name><given>Jeanne</given><family>DUBOIS</family></name></assignedPerson>
      <representedOrganization>
        <id root="1.2.250.1.71.4.2.2" extension="1750000001"/>
        <name>Laboratoire du Parc</name>
      </representedOrganization>
    </assignedAuthor>
  </author>
  <custodian><assignedCustodian><representedCustodianOrganization>
    <id root="1.2.250.1.71.4.2.2" extension="1750000001"/>
    <name>Laboratoire du Parc</name>
  </representedCustodianOrganization></assignedCustodian></custodian>
"""

BODY = """
  <component><structuredBody>
    <component><section>
      <code code="18723-7" codeSystem="2.16.840.1.113883.6.1" displayName="Hématologie"/>
      <title>Hématologie</title>
      <text><paragraph>Prélèvement du <content styleCode="Bold">03/09/2025</content>.</paragraph>
      </text>
      <component><section>
        <code code="58410-2" codeSystem="2.16.840.1.113883.6.1" displayName="NFS"/>
        <title>Numération formule sanguine</title>
        <text>
          <table border="1" width="100%">
            <caption>Résultats</caption>
            <thead><tr><th>Examen</th><th>Résultat</th><th>Unité</th><th>Référence</th></tr>
            </thead>
            <tbody>
              <tr ID="r1"><td>Hémoglobine</td><td styleCode="Bold">13,9</td><td>g/dL</td>
                <td>12 &lt; x &lt; 16</td></tr>
              <tr><td>Leucocytes</td><td>6,2</td><td>G/L</td><td>4 - 10</td></tr>
              <tr><td colspan="4">Frottis : <content styleCode="Italics">normal</content></td>
              </tr>
            </tbody>
          </table>
        </text>
      </section></component>
    </section></component>
    <component><section>
      <code code="2345-7" codeSystem="2.16.840.1.113883.6.1" displayName="Glucose"/>
      <text>
        <list listType="ordered">
          <caption>Glycémies</caption>
          <item>À jeun : <content styleCode="Bold Underline">5,1 mmol/L</content></item>
          <item>Post-prandiale : 7,0 mmol/L<sup>1</sup></item>
        </list>
        <list><item>Hémolyse : absente</item></list>
        <paragraph>Voir <linkHtml href="https://www.e-cancer.fr/?a=1&amp;b=2">le site</linkHtml>
          et le fichier <linkHtml href="compte-rendu.xml">joint</linkHtml>.<br/>H<sub>2</sub>O
          <content revised="delete">texte supprimé</content><footnote>note</footnote>
          <footnoteRef IDREF="n1"/><renderMultiMedia referencedObject="IMG1"/></paragraph>
      </text>
    </section></component>
    <component><section>
      <code code="48767-8" codeSystem="2.16.840.1.113883.6.1"/>
      <text>Texte libre sans titre</text>
    </section></component>
  </structuredBody></component>
"""


def document(body: str = BODY, conf: str = "N") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<ClinicalDocument xmlns="urn:hl7-org:v3" '
        f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"{HEADER.format(conf=conf)}{body}</ClinicalDocument>"
    ).encode()


def view(data: bytes) -> CdaView:
    result = cda_view(data)
    assert isinstance(result, CdaView), result
    return result


# --- the ANS N1 sample -----------------------------------------------------------------------


@pytest.mark.skipif(not SAMPLE.is_file(), reason="shared CDA sample absent")
def test_ans_n1_sample_header_in_french() -> None:
    v = view(SAMPLE.read_bytes())
    assert v.title == "Compte rendu d'examens biologiques"
    assert v.type_display == "CR d'examens biologiques"
    assert v.effective_time == "2021-04-01T13:47:45+02:00"
    assert v.effective_time_label == "1er avril 2021 à 13:47"
    assert v.patient.name == "DOMINIQUE PAT-TROIS"
    assert v.patient.birth_name == "PAT-TROIS"
    assert v.patient.ins == "279035121518989"
    assert v.patient.ins_label == "2 79 03 51 215 189 89"
    assert (v.patient.birth_date, v.patient.birth_date_label) == ("1979-03-28", "28 mars 1979")
    assert (v.patient.sex, v.patient.sex_label) == ("F", "Féminin")
    assert [(a.name, a.role, a.organization) for a in v.authors] == [
        ("Marcel CAMPARINI", "Médecin - Biologie médicale (SM)", "Laboratoire des charmes")
    ]
    assert v.custodian == "Laboratoire des charmes"
    assert (v.confidentiality.code, v.confidentiality.label) == ("N", "Normal")
    assert v.body_kind == "nonXMLBody"
    assert v.sections == []
    # the sample's base64 body was removed ("(removed)"): no PDF, a French notice instead
    assert v.embedded is None
    assert v.notice is not None and "ne peut pas être affiché" in v.notice
    assert pdf_of(SAMPLE.read_bytes()) is None


# --- an N1 built by build_n1 -----------------------------------------------------------------


def built_header() -> CdaHeader:
    return CdaHeader(
        id=InstanceId("1.2.250.1.999.3", "123456"),
        code=Coded("11502-2", "2.16.840.1.113883.6.1", "CR d'examens biologiques"),
        effective_time="2026-03-01T10:00:00+01:00",
        confidentiality=Coded("R", "2.16.840.1.113883.5.25"),
        patient=PatientRecord(
            ins=(InstanceId("1.2.250.1.213.1.4.10", "279035121518989"),),
            birth_family="PAT-TROIS",
            birth_given_names="DOMINIQUE MARIE",
            first_given="DOMINIQUE",
            sex="F",
            birth_date="1979-03-28",
        ),
        authors=(
            Author(
                ids=(InstanceId("1.2.250.1.71.4.2.1", "810000000001"),),
                given="Marcel",
                family="CAMPARINI",
                code=Coded("G15_10/SM03", "1.2.250.1.213.1.1.4.5", "Médecin - Biologie"),
                organization=Organization(InstanceId("1.2.250.1.71.4.2.2", "1"), "Labo"),
            ),
        ),
        custodian=Organization(InstanceId("1.2.250.1.71.4.2.2", "1750000001"), "Centre"),
        service_events=(ServiceEvent(low="2026-03-01T09:00:00+01:00"),),
    )


def test_built_n1_gives_its_pdf_back() -> None:
    pdf = minimal_pdf("Hemoglobine 13.9 g/dL")
    xml = build_n1(built_header(), pdf)
    v = view(xml)
    assert v.body_kind == "nonXMLBody"
    assert v.embedded is not None
    assert v.embedded.media_type == "application/pdf"
    assert v.embedded.content == pdf
    assert v.notice is None
    assert v.sections == []
    assert pdf_of(xml) == pdf
    assert v.embedded == ("application/pdf", pdf)  # also a (media type, bytes) pair
    assert v.title == v.type_display == "CR d'examens biologiques"  # no title: the type
    assert (v.confidentiality.code, v.confidentiality.label) == ("R", "Restreint")
    assert v.patient.name == "DOMINIQUE PAT-TROIS"
    assert [(a.name, a.role, a.organization) for a in v.authors] == [
        ("Marcel CAMPARINI", "Médecin - Biologie", "Labo")
    ]
    assert v.custodian == "Centre"


def test_built_n1_with_another_media_type_has_no_pdf() -> None:
    xml = build_n1(built_header(), b"compte rendu en texte", media_type="text/plain")
    v = view(xml)
    assert v.embedded is not None
    assert (v.embedded.media_type, v.embedded.content) == ("text/plain", b"compte rendu en texte")
    assert pdf_of(xml) is None


# --- a structured document -------------------------------------------------------------------


def test_structured_sections_titles_and_nesting() -> None:
    v = view(document())
    assert v.body_kind == "structuredBody"
    assert v.embedded is None and v.notice is None
    assert pdf_of(document()) is None
    assert v.title == "Compte rendu de biologie"
    assert v.effective_time_label == "3 septembre 2025 à 08:15"
    assert v.patient.name == "Claire MARTIN"
    assert v.patient.sex_label == "Féminin"
    assert [(s.title, s.code) for s in v.sections] == [
        ("Hématologie", "18723-7"),
        ("Glucose", "2345-7"),  # no title: the code's displayName
        ("Section", "48767-8"),  # neither: "Section"
    ]
    haemato, glucose, free = v.sections
    assert [(s.title, s.code) for s in haemato.children] == [
        ("Numération formule sanguine", "58410-2")
    ]
    assert glucose.children == [] and free.children == []
    assert isinstance(haemato.html, Markup)
    assert haemato.html == Markup("<p>Prélèvement du <strong>03/09/2025</strong>.</p>")
    assert free.html == Markup("Texte libre sans titre")
    for section in all_sections(v.sections):
        assert_safe(str(section.html))


def test_structured_table_cells() -> None:
    table = str(view(document()).sections[0].children[0].html)
    assert table.startswith("<table>") and table.endswith("</table>")  # no border, no width
    assert "<caption>Résultats</caption>" in table
    assert "<thead><tr><th>Examen</th><th>Résultat</th><th>Unité</th><th>Référence</th></tr>" in (
        table
    )
    cells = re.findall(r"<td(?: colspan=\"\d+\")?>(.*?)</td>", table, re.DOTALL)
    assert cells[:4] == ["Hémoglobine", "<strong>13,9</strong>", "g/dL", "12 &lt; x &lt; 16"]
    assert cells[4:8] == ["Leucocytes", "6,2", "G/L", "4 - 10"]
    assert '<td colspan="4">Frottis : <em>normal</em></td>' in table
    assert "ID=" not in table and "r1" not in table


def test_structured_list_links_and_inline_elements() -> None:
    html = str(view(document()).sections[1].html)
    assert '<p class="cda-caption"><strong>Glycémies</strong></p><ol>' in html
    assert "<li>À jeun : <strong><u>5,1 mmol/L</u></strong></li>" in html
    assert "<li>Post-prandiale : 7,0 mmol/L<sup>1</sup></li>" in html
    assert "<ul><li>Hémolyse : absente</li></ul>" in html
    assert (
        '<a href="https://www.e-cancer.fr/?a=1&amp;b=2" rel="noopener noreferrer">le site</a>'
    ) in html
    assert "le fichier joint." in html  # a relative href: its text only
    assert "<br>H<sub>2</sub>O" in html
    assert "texte supprimé" not in html  # revised="delete"
    assert "<small>note</small>" in html
    assert "n1" not in html
    assert "[contenu multimédia non affiché]" in html
    assert_safe(html)


@pytest.mark.parametrize(
    ("conf", "label"), [("N", "Normal"), ("R", "Restreint"), ("V", "Très restreint")]
)
def test_confidentiality_labels(conf: str, label: str) -> None:
    v = view(document(conf=conf))
    assert (v.confidentiality.code, v.confidentiality.label) == (conf, label)


def test_deep_sections_are_kept_up_to_the_limit_then_flattened() -> None:
    depth = MAX_SECTION_DEPTH + 3
    body = "".join(f"<component><section><title>Niveau {i}</title>" for i in range(1, depth + 1))
    body += "</section></component>" * depth
    v = view(document(f"<component><structuredBody>{body}</structuredBody></component>"))
    section = v.sections[0]
    for level in range(1, MAX_SECTION_DEPTH):
        assert section.title == f"Niveau {level}"
        assert len(section.children) == 1
        section = section.children[0]
    assert section.title == f"Niveau {MAX_SECTION_DEPTH}"
    assert [s.title for s in section.children] == [
        f"Niveau {i}" for i in range(MAX_SECTION_DEPTH + 1, depth + 1)
    ]
    assert all(s.children == [] for s in section.children)


def test_deep_narrative_keeps_its_text() -> None:
    nested = "<content>" * 120 + "profond" + "</content>" * 120
    v = view(document(BODY.replace("Texte libre sans titre", nested)))
    html = str(v.sections[2].html)
    assert "profond" in html
    assert_safe(html)


# --- hostile documents -----------------------------------------------------------------------

HOSTILE_BODY = """
  <component><structuredBody>
    <component><section>
      <title>&lt;script&gt;alert('titre')&lt;/script&gt;</title>
      <text>
        <script>alert('cda')</script>
        <h:script xmlns:h="http://www.w3.org/1999/xhtml">alert('xhtml')</h:script>
        <h:img xmlns:h="http://www.w3.org/1999/xhtml" src="x" onerror="alert(1)"/>
        <img src="x" onerror="alert(2)"/>
        <paragraph onclick="alert(3)" style="color:red" class="x">clic</paragraph>
        <content onclick="alert(4)" styleCode="Bold" onmouseover="alert(5)">gras</content>
        <linkHtml href="javascript:alert(6)">lien 1</linkHtml>
        <linkHtml href=" JaVaScRiPt:alert(7)">lien 2</linkHtml>
        <linkHtml href="java&#10;script:alert(8)">lien 3</linkHtml>
        <linkHtml href="data:text/html,&lt;script&gt;alert(9)&lt;/script&gt;">lien 4</linkHtml>
        <linkHtml href="http://ok.example/&quot;onclick=&quot;alert(10)">lien 5</linkHtml>
        <linkHtml href="https://ok.example/a b">lien 7</linkHtml>
        <linkHtml href="//evil.example/x">lien 6</linkHtml>
        <table onload="alert(11)"><tbody><tr>
          <td colspan="2&quot; onmouseover=&quot;alert(12)" rowspan="3">cellule</td>
          <td><![CDATA[<img src=x onerror=alert(13)>]]></td>
          <td>&lt;iframe src="javascript:alert(14)"&gt;&lt;/iframe&gt;</td>
        </tr></tbody></table>
        <style>body { background: url(javascript:alert(15)) }</style>
        <svg xmlns="http://www.w3.org/2000/svg" onload="alert(16)"><text>svg</text></svg>
      </text>
    </section></component>
  </structuredBody></component>
"""


def test_hostile_narrative_is_neutralised() -> None:
    v = view(document(HOSTILE_BODY))
    (section,) = v.sections
    assert section.title == "<script>alert('titre')</script>"  # plain text; escaped by Jinja2
    html = str(section.html)
    assert_safe(html)
    assert not re.search(r"<[^>]*\son[a-z]+=", html)  # no event handler attribute
    assert "style=" not in html and 'class="x"' not in html
    assert "<p>clic</p>" in html
    assert "<strong>gras</strong>" in html
    assert all(f"lien {i}" in html for i in (1, 2, 3, 4, 6, 7))
    assert html.count("<a ") == 1  # only the http URL, its quote escaped
    assert '<a href="http://ok.example/&#34;onclick=&#34;alert(10)" rel="noopener' in html
    assert '<td rowspan="3">cellule</td>' in html
    assert "&lt;img src=x onerror=alert(13)&gt;" in html
    assert "&lt;iframe" in html


def test_hostile_javascript_only_in_text() -> None:
    """``javascript`` may remain as words of the text, never inside a tag."""
    html = str(view(document(HOSTILE_BODY)).sections[0].html)
    assert "javascript" in html  # e.g. the text of a CDA <style> element
    outside = re.sub(r"<[^>]*>", "", html)
    assert html.lower().count("javascript") == outside.lower().count("javascript")


@pytest.mark.parametrize(
    "prolog",
    [
        '<!DOCTYPE ClinicalDocument [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
        '<!DOCTYPE ClinicalDocument [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>',
        '<!DOCTYPE ClinicalDocument SYSTEM "http://evil.example/cda.dtd">',
    ],
)
def test_dtd_and_entities_are_refused_as_an_error_value(prolog: str) -> None:
    data = document(BODY.replace("Texte libre sans titre", "&xxe; &b;")).replace(
        b"\n<ClinicalDocument", b"\n" + prolog.encode() + b"\n<ClinicalDocument", 1
    )
    result = cda_view(data)
    assert isinstance(result, CdaViewError)
    assert "DOCTYPE" in result.message
    assert result.category == Category.INVALID
    assert "passwd" not in result.message


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "vide"),
        (b"  \n ", "vide"),
        (b"%PDF-1.4 not xml", "XML"),
        (b"<ClinicalDocument xmlns='urn:hl7-org:v3'>", "XML"),
        (b"<Bundle xmlns='http://hl7.org/fhir'/>", "CDA"),
        (b"<ClinicalDocument/>", "CDA"),
        (b"<ClinicalDocument xmlns='urn:hl7-org:v3'/>", "en-tête"),
        (
            b"<xsl:stylesheet xmlns:xsl='http://www.w3.org/1999/XSL/Transform' version='1.0'/>",
            "feuille de style",
        ),
    ],
)
def test_bad_input_is_an_error_value_in_french(data: bytes, words: str) -> None:
    result = cda_view(data)
    assert isinstance(result, CdaViewError)
    assert words in result.message
    assert pdf_of(data) is None


def test_missing_ins_is_an_error_value() -> None:
    data = document().replace(b'root="1.2.250.1.213.1.4.10"', b'root="1.2.3.4"')
    result = cda_view(data)
    assert isinstance(result, CdaViewError)
    assert result.message == "L'en-tête du document CDA est incomplet ou invalide."
    assert "INS" in result.detail


def test_not_bytes_is_an_error_value() -> None:
    result = cda_view("<ClinicalDocument/>")  # type: ignore[arg-type]
    assert isinstance(result, CdaViewError)
    assert pdf_of("x") is None  # type: ignore[arg-type]


def test_french_date() -> None:
    assert french_date("2021-04-01T13:47:45+02:00") == "1er avril 2021 à 13:47"
    assert french_date("2025-12-25") == "25 décembre 2025"
    assert french_date("2025-08") == "août 2025"
    assert french_date("2025") == "2025"
    assert french_date(None) is None


# --- properties ------------------------------------------------------------------------------

xml_text = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs", "Cc"),
        blacklist_characters="\ufffe\uffff",
    )
    | st.sampled_from("<>&\"'\n\t"),
    max_size=60,
)
PLACES = ("paragraph", "content", "td", "item", "caption", "linkHtml", "unknown", "footnote")


def with_text(text: str, place: str, href: str) -> bytes:
    root = etree.fromstring(document())
    narrative = root.find(f".//{{{CDA_NS}}}section/{{{CDA_NS}}}text")
    assert narrative is not None

    def el(parent: etree._Element, tag: str) -> etree._Element:
        return etree.SubElement(parent, f"{{{CDA_NS}}}{tag}")

    if place == "td":
        node = el(el(el(el(narrative, "table"), "tbody"), "tr"), "td")
    elif place in ("item", "caption"):
        node = el(el(narrative, "list"), place)
    elif place == "content":
        node = el(el(narrative, "paragraph"), "content")
        node.set("styleCode", "Bold")
    else:
        node = el(narrative, place)
    if place == "linkHtml":
        node.set("href", href)
    node.text = f"[{text}]"
    node.tail = text
    return bytes(etree.tostring(root, encoding="UTF-8"))


@settings(max_examples=150, deadline=None)
@given(xml_text, st.sampled_from(PLACES), st.one_of(xml_text, xml_text.map("https://h/".__add__)))
def test_narrative_text_is_always_escaped(text: str, place: str, href: str) -> None:
    html = str(view(with_text(text, place, href)).sections[0].html)
    assert_safe(html)
    assert str(escape(f"[{text}]")) in html


@settings(max_examples=150, deadline=None)
@given(
    st.binary(max_size=200)
    | st.text(max_size=200).map(lambda t: f"<ClinicalDocument xmlns='urn:hl7-org:v3'>{t}".encode())
)
def test_any_bytes_give_a_value_never_an_exception(data: bytes) -> None:
    result = cda_view(data)
    assert isinstance(result, CdaView | CdaViewError)
    if isinstance(result, CdaViewError):
        assert result.message


# --- the official examples -------------------------------------------------------------------


@pytest.mark.skipif(not EXAMPLES.is_dir(), reason="TestContenuCDA corpus absent")
def test_every_official_example_is_shown_or_refused() -> None:
    kinds: dict[str, int] = {}
    for path in sorted(EXAMPLES.glob("*.xml")):
        result = cda_view(path.read_bytes())
        if isinstance(result, CdaViewError):
            kinds["refused"] = kinds.get("refused", 0) + 1
            continue
        kinds[str(result.body_kind)] = kinds.get(str(result.body_kind), 0) + 1
        if result.body_kind == "nonXMLBody":
            assert result.embedded is not None, path.name
            assert result.embedded.content.startswith(b"%PDF-"), path.name
            assert pdf_of(path.read_bytes()) == result.embedded.content
        else:
            assert result.sections, path.name
            for section in all_sections(result.sections):
                assert section.title, path.name
                assert_safe(str(section.html))
    assert kinds == {"structuredBody": 83, "nonXMLBody": 4, "refused": 7}
