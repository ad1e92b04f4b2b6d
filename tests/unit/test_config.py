"""Config validation: every mistake named with key path and line, all at once."""

import os
import subprocess
import sys

import pytest

from bridge.config import ConfigError, parse_config, warnings_for

GOOD = """\
component:
  jid: bridge.example.org
  secret: ${TEST_BRIDGE_SECRET}
networks:
  libera:
    type: irc
    host: irc.example.net
    port: 6697
  silcnet:
    type: silc
    host: silc.example.net
links:
  hackers:
    - xmpp: Hackers@conference.example.org
    - irc: libera/#hackers
    - silc: silcnet/hackers
"""


@pytest.fixture(autouse=True)
def secret_env(monkeypatch):
    monkeypatch.setenv("TEST_BRIDGE_SECRET", "s3cret")


def problems(text):
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    return [(p.line, p.path, p.message) for p in info.value.problems]


def test_good_config_becomes_typed_objects():
    config = parse_config(GOOD)
    assert config.component.secret == "s3cret"
    assert config.networks["libera"].port == 6697
    assert config.networks["libera"].flood.burst == 4  # safe default
    link = config.links[0]
    assert [(e.network, e.room) for e in link.endpoints] == [
        ("xmpp", "hackers@conference.example.org"), ("libera", "#hackers"), ("silcnet", "hackers")]
    assert warnings_for(config) == []


def test_all_mistakes_reported_at_once_with_lines():
    bad = GOOD.replace("port: 6697", "port: high\n    colour: blue") \
              .replace("xmpp: Hackers@conference.example.org", "xmpp: hackers@conference.example.org/me") \
              .replace("irc: libera/#hackers", "irc: libera/hackers") \
              .replace("silc: silcnet/hackers", "silc: efnet/hackers")
    found = problems(bad)
    assert (8, "networks.libera.port", "expected an integer, got 'high'") in found
    assert (9, "networks.libera.colour", "unknown key 'colour'") in found
    lines = {path: line for line, path, _ in found}
    assert lines["links.hackers[0].xmpp"] == 15 and "bare room JID" in dict(
        (p, m) for _, p, m in found)["links.hackers[0].xmpp"]
    assert lines["links.hackers[1].irc"] == 16
    assert lines["links.hackers[2].silc"] == 17
    assert len(found) == 5


def test_puppet_joins_is_a_rate_with_a_default():
    assert parse_config(GOOD).component.puppet_joins.burst == 4
    config = parse_config(GOOD.replace("  secret:", "  puppet_joins: {burst: 10, interval: 0.5}\n  secret:"))
    assert (config.component.puppet_joins.burst, config.component.puppet_joins.interval) == (10, 0.5)
    found = problems(GOOD.replace("  secret:", "  puppet_joins: {burst: lots}\n  secret:"))
    assert found == [(3, "component.puppet_joins.burst", "expected an integer, got 'lots'")]


def test_missing_fields_and_wrong_types():
    found = problems("component: {jid: b.example.org}\nnetworks: {x: {type: irc, tls: maybe}}\nlinks: {}\n")
    paths = {p: m for _, p, m in found}
    assert "missing required key (or secret_file)" == paths["component.secret"]
    assert paths["networks.x.host"] == "missing required key"
    assert paths["networks.x.tls"].startswith("expected true or false")


def test_link_to_network_of_wrong_type():
    found = problems(GOOD.replace("silc: silcnet/hackers", "silc: libera/hackers"))
    assert any(p == "links.hackers[2].silc" and "not an silc network" in m for _, p, m in found)


def test_unset_environment_variable_is_named(monkeypatch):
    monkeypatch.delenv("TEST_BRIDGE_SECRET")
    assert (3, "component.secret", "environment variable TEST_BRIDGE_SECRET is not set") in problems(GOOD)


def test_secret_file(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("from-file\n")
    secret.chmod(0o600)
    config = parse_config(GOOD.replace("secret: ${TEST_BRIDGE_SECRET}", f"secret_file: {secret}"))
    assert config.component.secret == "from-file"
    assert warnings_for(config) == []
    secret.chmod(0o644)
    config = parse_config(GOOD.replace("secret: ${TEST_BRIDGE_SECRET}", f"secret_file: {secret}"))
    assert "world-readable" in warnings_for(config)[0].message


def test_a_secret_file_name_with_a_nul_is_a_problem_not_a_crash():
    found = problems(GOOD.replace("secret: ${TEST_BRIDGE_SECRET}", 'secret_file: "a\\0b"'))
    assert found == [(3, "component.secret_file", "cannot read secret file: its name holds a NUL character")]


def test_nesting_deeper_than_the_yaml_parser_goes_is_a_problem_not_a_crash():
    assert problems("component: " + "[" * 2000 + "]" * 2000) == [(1, "(yaml)", "nested too deeply")]


@pytest.mark.parametrize("value", ["!!int", "!!bool maybe", "!!timestamp 0000-01-01", "!!float"])
def test_a_value_yaml_cannot_construct_is_a_problem_not_a_crash(value):
    found = problems(GOOD + f"log:\n  level: {value}\n")
    assert [(path, message.split(":")[0]) for _, path, message in found] == [("log.level", "cannot read this value")]


def test_yaml_syntax_error_has_a_line():
    found = problems("component:\n  jid: [unclosed\n")
    assert found[0][0] >= 2


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "bridge", *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "TEST_BRIDGE_SECRET": "s3cret"})


def test_check_config_command(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(GOOD)
    ok = run_cli("check-config", "--config", str(path))
    assert ok.returncode == 0, ok.stderr
    path.write_text(GOOD.replace("port: 6697", "port: x"))
    bad = run_cli("check-config", "--config", str(path))
    assert bad.returncode == 2
    assert f"{path}:line 8: networks.libera.port: expected an integer" in bad.stderr


def test_check_config_warns_of_world_readable_secret_and_passes_as_run_starts(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("x")
    secret.chmod(0o644)
    path = tmp_path / "config.yaml"
    path.write_text(GOOD.replace("secret: ${TEST_BRIDGE_SECRET}", f"secret_file: {secret}"))
    result = run_cli("check-config", "--config", str(path))
    assert result.returncode == 0
    assert "world-readable" in result.stderr


def test_example_config_is_valid_but_for_its_secret_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where its relative store and key_dir land
    text = open(os.path.join(os.path.dirname(__file__), "../../config.example.yaml")).read()
    found = problems(text)
    assert [p for _, p, _ in found] == ["component.secret_file"]  # /etc/muc-bridge/... is not here


def test_admins_and_metrics_are_read_and_checked():
    config = parse_config(GOOD + "admins: [Ops@Example.org, '*@admins.example.org']\n"
                                 "metrics: {listen: '127.0.0.1:9102'}\n")
    assert config.admins == ("ops@example.org", "*@admins.example.org")
    assert config.metrics.listen == "127.0.0.1:9102"
    assert parse_config(GOOD).metrics is None and parse_config(GOOD).admins == ()
    found = problems(GOOD + "admins:\n  - ops@example.org\n  - ops\n  - 'ops@example.org/phone'\n"
                            "  - 'o*@example.org'\nmetrics:\n  listen: 9102\n")
    assert [(line, path) for line, path, _ in found] == [
        (19, "admins[1]"), (20, "admins[2]"), (21, "admins[3]"), (23, "metrics.listen")]
    assert "not a bare JID (alice@example.org) or *@domain" in found[0][2]
    assert "must be host:port" in found[3][2]
    assert problems(GOOD + "metrics: {port: 9102}\n") == [
        (17, "metrics.port", "unknown key 'port'"), (17, "metrics.listen", "missing required key")]


PORTAL = GOOD + """\
portal:
  networks: [libera]
  users: [alice@example.org, example.net, "*.example.com"]
  per_user: 2
"""


def test_portal_is_off_unless_it_names_networks():
    assert parse_config(GOOD).portal.networks == ()
    config = parse_config(PORTAL)
    assert config.portal.networks == ("libera",)
    assert config.portal.users == ("alice@example.org", "example.net", "*.example.com")
    assert (config.portal.per_user, config.portal.per_network) == (2, 100)


def test_portal_mistakes_name_key_and_line():
    found = problems(PORTAL.replace("[libera]", "[libera, silcnet, efnet]")
                     .replace('"*.example.com"', '"a@*.example.com"').replace("per_user: 2", "per_user: 0"))
    assert (18, "portal.networks[1]", "network 'silcnet' is not an irc network") in found
    assert (18, "portal.networks[2]", "unknown network 'efnet'") in found
    assert any(line == 19 and path == "portal.users" and "'a@*.example.com'" in message
               for line, path, message in found)
    assert (20, "portal.per_user", "must be 1 or more") in found


def test_one_identd_for_every_user_connection_is_off_unless_given_a_port():
    assert parse_config(PORTAL).identd is None and parse_config(GOOD).identd is None
    identd = parse_config(GOOD + "identd: {port: 113}\n").identd  # plumbed links only: no portal needed
    assert (identd.port, identd.host) == (113, "")  # every address
    identd = parse_config(PORTAL + "identd:\n  port: 8113\n  host: 127.0.0.1\n").identd
    assert (identd.port, identd.host) == (8113, "127.0.0.1")
    assert problems(GOOD + "identd:\n  port: 70000\n  host: a b\n  listen: x\n") == [
        (18, "identd.port", "must be a port number, 1 to 65535"),
        (19, "identd.host", "must be one word, without spaces"),
        (20, "identd.listen", "unknown key 'listen'")]
    assert problems(GOOD + "identd: {host: 127.0.0.1}\n") == [(17, "identd.port", "missing required key")]


def test_the_portal_identd_keys_of_old_still_work_and_say_where_they_moved():
    config = parse_config(PORTAL + "  identd_port: 113\n  identd_host: 127.0.0.1\n")
    assert (config.identd.port, config.identd.host) == (113, "127.0.0.1")
    assert [(w.line, w.path) for w in warnings_for(config)] == [(21, "portal.identd_port"),
                                                                (22, "portal.identd_host")]
    assert "moved to identd.port" in warnings_for(config)[0].message
    assert parse_config(PORTAL + "  identd_port: 0\n").identd is None  # 0 was "none"
    assert (21, "portal.identd_port", "must be a port number, 1 to 65535") in \
        problems(PORTAL + "  identd_port: 70000\n")
    both = problems(PORTAL + "  identd_port: 113\nidentd: {port: 113}\n")
    assert [(line, path) for line, path, _ in both] == [(21, "portal.identd_port")]
    assert "remove this one" in both[0][2]


def test_a_portal_with_networks_says_who_may_use_it():
    found = problems(GOOD + "portal:\n  networks: [libera]\n")
    assert found == [(18, "portal.users", "say who may use the portal (alice@example.org, "
                                          "example.org, *.example.org or *)")]


def test_example_config_portal_section_is_valid_when_turned_on(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = open(os.path.join(os.path.dirname(__file__), "../../config.example.yaml")).read()
    found = problems(text.replace("networks: []", "networks: [libera]"))
    assert [p for _, p, _ in found] == ["component.secret_file"]


def test_a_path_too_long_for_the_file_system_is_a_problem_not_a_traceback(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    long = "x" * 5000
    found = problems(GOOD + f"store: {{url: 'sqlite://{long}/bridge.db'}}\n")
    assert [(path, message) for _, path, message in found] == [
        ("store.url", "cannot be a database file: File name too long")]


def test_the_component_link_is_plain_unless_tls_and_a_ca_file_must_hold_certificates(tmp_path):
    from bridge.demo.servers import make_self_signed_cert
    plain = parse_config(GOOD).component
    assert (plain.tls, plain.tls_verify, plain.ca_file, plain.tls_name) == (False, True, None, None)
    assert plain.server_domain == "example.org"  # the name a TLS certificate must carry
    make_self_signed_cert(tmp_path / "ca.pem", tmp_path / "key.pem", "example.org")
    tls = GOOD.replace("  secret:", "  tls: true\n  ca_file: CA\n  tls_name: xmpp.example.org\n  secret:")
    c = parse_config(tls.replace("CA", str(tmp_path / "ca.pem"))).component
    assert (c.tls, c.ca_file, c.tls_name) == (True, str(tmp_path / "ca.pem"), "xmpp.example.org")
    assert problems(tls.replace("CA", str(tmp_path / "none.pem"))) == [
        (4, "component.ca_file", f"no such file: {tmp_path / 'none.pem'}")]
    assert problems(tls.replace("CA", str(tmp_path / "key.pem"))) == [
        (4, "component.ca_file", f"{tmp_path / 'key.pem'} holds no CA certificate in PEM form")]


def test_xmpp_users_is_relay_unless_an_irc_or_silc_endpoint_says_connect():
    config = parse_config(GOOD)
    assert [e.xmpp_users for e in config.links[0].endpoints] == ["relay"] * 3
    assert config.networks["silcnet"].xmpp_user_clients == 20
    assert (config.networks["libera"].xmpp_user_clients, config.networks["libera"].xmpp_user_suffix) == (20, "[x]")
    text = GOOD.replace("    - silc: silcnet/hackers\n", "    - silc: silcnet/hackers\n      xmpp_users: connect\n") \
               .replace("    - irc: libera/#hackers\n", "    - irc: libera/#hackers\n      xmpp_users: connect\n") \
               .replace("    host: silc.example.net\n", "    host: silc.example.net\n    xmpp_user_clients: 1\n"
                        "    xmpp_user_idle: 60\n") \
               .replace("    host: irc.example.net\n", "    host: irc.example.net\n    xmpp_user_suffix: '|x'\n")
    config = parse_config(text)
    assert [e.xmpp_users for e in config.links[0].endpoints] == ["relay", "connect", "connect"]
    assert (config.networks["silcnet"].xmpp_user_clients, config.networks["silcnet"].xmpp_user_idle) == (1, 60.0)
    assert config.networks["libera"].xmpp_user_suffix == "|x"
    found = problems(text.replace("xmpp_users: connect", "xmpp_users: puppets", 1)
                     .replace("xmpp_user_idle: 60", "xmpp_user_idle: 0")
                     .replace("'|x'", "'[x y]'")
                     .replace("    - xmpp: Hackers@conference.example.org\n",
                              "    - xmpp: Hackers@conference.example.org\n      xmpp_users: connect\n"))
    assert [(key, problem) for _, key, problem in found] == [
        ("networks.libera.xmpp_user_suffix",
         "must be at most 8 of the characters IRC nicks hold (letters, digits, []\\`_^{|}-)"),
        ("networks.silcnet.xmpp_user_idle", "must be a number of seconds above 0"),
        ("links.hackers[0].xmpp_users", "only IRC and SILC endpoints take xmpp_users"),
        ("links.hackers[1].xmpp_users", "must be relay or connect"),
    ]
