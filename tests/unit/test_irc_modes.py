"""Channel MODE parameters as the server's CHANMODES and PREFIX say, and the ops and voices
they give as the adapter sees them."""

import pytest

from bridge.core.events import Standing
from bridge.irc.modes import parse
from tests.unit.test_irc_scripted import CHAN, by_nick, ircd, joined, make_adapter  # noqa: F401
from tests.servers.scripted_ircd import running

MODES = ["beI", "k", "l", "imnpst"]


@pytest.mark.parametrize("arguments, chanmodes, prefix, changes", [
    (["+eo", "*!*@spam", "bob"], None, "ov", [("+", "e", "*!*@spam"), ("+", "o", "bob")]),
    (["-l+o", "bob"], MODES, "ov", [("-", "l", None), ("+", "o", "bob")]),
    (["+lk-k+v", "10", "key", "key", "bob"], MODES, "ov",
     [("+", "l", "10"), ("+", "k", "key"), ("-", "k", "key"), ("+", "v", "bob")]),
    (["+qao", "x", "y", "z"], MODES, "qaohv", [("+", "q", "x"), ("+", "a", "y"), ("+", "o", "z")]),
    (["+jo", "3:5", "bob"], ["beI", "k", "jl", "imnpst"], "ov", [("+", "j", "3:5"), ("+", "o", "bob")]),
    (["+o"], MODES, "ov", [("+", "o", None)]),  # a parameter missing: none, no error
    (["o", "bob"], MODES, "ov", []),  # no sign: nothing
    ([], MODES, "ov", []),
])
def test_parameters_go_where_the_server_says(arguments, chanmodes, prefix, changes):
    assert list(parse(arguments, chanmodes, prefix)) == changes


async def test_an_op_given_beside_a_list_mode_reaches_the_right_person(ircd):  # noqa: F811
    adapter, events = make_adapter(ircd.port)
    async with running(adapter):
        client = await joined(ircd)
        client.send(":scripted.test 005 xbridge CHANMODES=beI,k,l,imnpst PREFIX=(ov)@+ :are supported")
        client.send(f":bob!b@h JOIN {CHAN}")
        client.send(f":op!o@h MODE {CHAN} +eo *!*@spam bob")
        await events.wait_for(lambda e: isinstance(e, Standing))
        assert [(e.sender, e.rank) for e in events.of(Standing)] == [(by_nick("bob"), "op")]
