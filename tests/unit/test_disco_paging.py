"""XEP-0059 paging of the component's disco#items (`bridge.xmpp.queries.page`)."""

from __future__ import annotations

import pytest
from slixmpp.exceptions import XMPPError
from slixmpp.plugins.xep_0030.stanza import DiscoItems
from slixmpp.plugins.xep_0059.stanza import Set
from slixmpp.xmlstream import register_stanza_plugin

from bridge.xmpp.queries import page

register_stanza_plugin(DiscoItems, Set)  # what slixmpp's xep_0059 plugin does on a stream

ENTRIES = [(f"#c{i}%net@bridge", f"#c{i} on net") for i in range(5)]


def rsm(**fields) -> Set:
    asked = Set()
    for key, value in fields.items():
        asked[key] = value
    return asked


def jids(items) -> list[str]:
    """In the order of the answer (slixmpp's `items` is a set)."""
    return [item.get("jid") for item in items.xml.iter("{http://jabber.org/protocol/disco#items}item")]


def test_after_and_max_give_the_next_page_with_its_bounds_and_the_count():
    items = page(ENTRIES, rsm(max="2", after="#c1%net@bridge"))
    assert jids(items) == ["#c2%net@bridge", "#c3%net@bridge"]
    assert (items["rsm"]["first"], items["rsm"]["first_index"], items["rsm"]["last"], items["rsm"]["count"]) \
        == ("#c2%net@bridge", "2", "#c3%net@bridge", "5")


def test_an_empty_before_is_the_last_page_and_before_an_item_the_page_ending_there():
    assert jids(page(ENTRIES, rsm(max="2", before=True))) == ["#c3%net@bridge", "#c4%net@bridge"]
    assert jids(page(ENTRIES, rsm(max="3", before="#c2%net@bridge"))) == ["#c0%net@bridge", "#c1%net@bridge"]


def test_max_zero_is_the_count_alone_and_an_unknown_item_is_not_found():
    items = page(ENTRIES, rsm(max="0"))
    assert jids(items) == [] and items["rsm"]["count"] == "5"
    with pytest.raises(XMPPError) as caught:
        page(ENTRIES, rsm(after="#gone%net@bridge"))
    assert caught.value.condition == "item-not-found"
