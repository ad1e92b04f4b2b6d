"""Text and attribute values survive the trip into XML, whatever they hold."""

from xml.etree import ElementTree as ET

from hypothesis import given
from hypothesis import strategies as st

from bridge.xmpp.stanza import _NOT_XML, attr, text


@given(st.text())
def test_any_attribute_value_reads_back_as_written_minus_what_xml_cannot_carry(value):
    element = ET.fromstring(f"<a v={attr(value)}/>")
    assert element.get("v") == _NOT_XML.sub("", value)


@given(st.text())
def test_any_text_reads_back_as_written_minus_what_xml_cannot_carry(value):
    element = ET.fromstring(f"<a>{text(value)}</a>")
    expected = _NOT_XML.sub("", value).replace("\r\n", "\n").replace("\r", "\n")
    assert (element.text or "") == expected


def test_plain_values_are_quoted_as_they_are():
    assert attr("room@muc.example.org/alice") == "'room@muc.example.org/alice'"
    assert attr("it's") == '"it\'s"'
