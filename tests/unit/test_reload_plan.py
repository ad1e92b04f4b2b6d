"""What a reload changes (`bridge.core.reload.plan`), and the router taking new links."""

import asyncio

from bridge.config import parse_config
from bridge.core.events import Endpoint, Identity, Message
from bridge.core.reload import plan
from bridge.core.router import Router
from tests.unit.test_router import FakeAdapter

BASE = """\
component: {jid: bridge.example.org, secret: s3cret}
store: {url: "sqlite://:memory:"}
admins: [ops@example.org]
networks:
  libera: {type: irc, host: irc.libera.chat, nick: relay}
  oftc: {type: irc, host: irc.oftc.net, nick: relay}
links:
  a: [{xmpp: a@muc.example.org}, {irc: "libera/#a"}]
  b: [{xmpp: b@muc.example.org}, {irc: "libera/#b"}, {irc: "oftc/#b"}]
"""


def config(text: str = BASE, **replace: str):
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    return parse_config(text)


def edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new)


def test_the_same_config_changes_nothing():
    p = plan(config(), config())
    assert not p.changes and p.kept == () and p.summary() == ["nothing changed"]


def test_a_link_added_and_one_removed_are_rooms_joined_and_left_on_kept_networks():
    new = edit(BASE, '  a: [{xmpp: a@muc.example.org}, {irc: "libera/#a"}]\n',
               '  c: [{xmpp: c@muc.example.org}, {irc: "libera/#c"}]\n')
    p = plan(config(), parse_config(new))
    assert p.networks_added == p.networks_removed == p.networks_changed == ()
    assert sorted(p.rooms_added) == [("libera", "#c"), ("xmpp", "c@muc.example.org")]
    assert sorted(p.rooms_removed) == [("libera", "#a"), ("xmpp", "a@muc.example.org")]
    assert p.links_changed and p.config.links == parse_config(new).links
    assert "libera/#c: joining" in p.summary() and "xmpp/a@muc.example.org: leaving" in p.summary()


def test_networks_added_removed_and_changed_and_the_rest_untouched():
    new = BASE.replace("  oftc: {type: irc, host: irc.oftc.net, nick: relay}\n",
                       "  efnet: {type: irc, host: irc.efnet.org}\n")
    new = new.replace('{irc: "oftc/#b"}', '{irc: "efnet/#b"}')
    new = new.replace("host: irc.libera.chat, nick: relay", "host: irc.libera.chat, nick: relay2")
    p = plan(config(), parse_config(new))
    assert (p.networks_added, p.networks_removed, p.networks_changed) == (("efnet",), ("oftc",), ("libera",))
    # Rooms of networks that come, go or reconnect are theirs to join: none listed here.
    assert p.rooms_added == p.rooms_removed == ()
    assert p.summary()[:3] == ["network efnet: added, connecting", "network oftc: removed, disconnecting",
                               "network libera: settings changed, reconnecting"]


def test_a_room_whose_options_changed_is_left_and_joined_again_but_not_for_a_topic_direction():
    p = plan(config(), config(**{'{xmpp: a@muc.example.org}': '{xmpp: a@muc.example.org, puppets: eager}'}))
    assert p.rooms_added == p.rooms_removed == (("xmpp", "a@muc.example.org"),)
    p = plan(config(), config(**{'{irc: "libera/#a"}': '{irc: "libera/#a", topic: none}'}))
    assert p.rooms_added == p.rooms_removed == () and p.links_changed
    assert p.summary() == ["links: changed (topic directions)"]


def test_keys_that_need_a_restart_are_named_and_keep_their_running_values():
    old = config()
    new = config(**{"secret: s3cret}": "secret: other, bot_nick: b}", "admins: [ops@example.org]":
                    "admins: [ops@example.org]\nmetrics: {listen: '127.0.0.1:9102'}\nlog: {level: debug}"})
    p = plan(old, new)
    assert p.kept == ("component.secret", "component.bot_nick", "metrics", "log.level")
    assert p.config.component == old.component and p.config.metrics is None and p.config.log == old.log
    lines = p.summary()
    assert "component.secret: cannot change while the bridge runs; restart to apply it " \
           "(the running value stays)" in lines
    assert not any("other" in line for line in lines)  # never a value: it may be a secret
    assert not p.changes  # nothing else changed


def test_admins_change_live():
    p = plan(config(), config(**{"admins: [ops@example.org]": "admins: [ops@example.org, b@example.org]"}))
    assert p.admins_changed and p.changes and p.kept == ()
    assert p.config.admins == ("ops@example.org", "b@example.org")


async def test_the_router_routes_by_new_links_and_starts_and_stops_workers():
    old, new = config(), config(**{'  a: [{xmpp: a@muc.example.org}, {irc: "libera/#a"}]\n':
                                   '  c: [{xmpp: c@muc.example.org}, {irc: "libera/#c"}]\n'})
    router = Router(old.links)
    adapters = {name: FakeAdapter(name, router.receive) for name in ("xmpp", "libera", "oftc")}
    for adapter in adapters.values():
        router.add_adapter(adapter)
    task = asyncio.create_task(router.run())
    await asyncio.sleep(0)
    a = Endpoint("xmpp", "a@muc.example.org")
    assert a in router.workers
    router.reconfigure(new.links)
    for link in new.links:  # what `bridge.reload` does for rooms added on kept networks
        for ep in link.endpoints:
            if ep.room not in adapters[ep.network].rooms:
                adapters[ep.network].add_endpoint(ep.room, {})
    assert a not in router.workers and a not in router.queues
    alice = Identity("xmpp", "alice@example.org", "alice")
    router.receive(Message(Endpoint("xmpp", "c@muc.example.org"), alice, "to c"))
    router.receive(Message(a, alice, "to a, unlinked now"))
    await asyncio.sleep(0.05)
    assert [(room, e.text) for room, e in adapters["libera"].delivered] == [("#c", "to c")]
    # A network's adapter replaced (settings changed): its queues feed the new one.
    fresh = FakeAdapter("libera", router.receive)
    router.add_adapter(fresh)
    router.receive(Message(Endpoint("xmpp", "b@muc.example.org"), alice, "to b"))
    await asyncio.sleep(0.05)
    assert [(room, e.text) for room, e in fresh.delivered] == [("#b", "to b")]
    assert sorted(fresh.rooms) == ["#b", "#c"]
    router.remove_adapter("oftc")
    assert not any(e.network == "oftc" for e in [*router.queues, *router.workers])
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_standby_reads_the_config_again_on_sighup_for_its_next_lead(tmp_path):
    from bridge.standby import _Latest

    path = tmp_path / "config.yaml"
    path.write_text(BASE)
    latest = _Latest(config(), str(path))
    path.write_text(edit(edit(BASE, "  a: [", "  c: ["), "sqlite://:memory:", "sqlite:///other.db"))
    await latest._read(str(path))
    assert [link.name for link in latest.config.links] == ["c", "b"]
    assert latest.config.store.url == "sqlite://:memory:"  # the store needs a restart
    path.write_text("links: [")
    await latest._read(str(path))  # refused: the config it had stays
    assert [link.name for link in latest.config.links] == ["c", "b"]
