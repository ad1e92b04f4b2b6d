"""Real servers for integration tests, started per test on free loopback ports.

Fixtures (function scope; each server starts in well under a second):
- `prosody`: a running `bridge.demo.servers.Prosody` (localhost, muc.localhost, bridge.localhost).
  Options through indirect parametrisation, e.g.
  `@pytest.mark.parametrize("prosody", [{"muc_mam": True}], indirect=True)`.
- `inspircd`: a running `InspIRCd` (plain `port`, TLS `tls_port`, `cert_path`), same options
  mechanism (`password=`, `flood_limits=`).
- `ngircd`: a running `NgIRCd` (plain `port`).
- `ejabberd`: one running ejabberd 23.01 (tests/servers/ejabberd.py) for the whole session, the
  same names as `prosody` (localhost, muc.localhost, bridge.localhost); tests use fresh room
  names on it. `ejabberd_user`: factory like `xmpp_user`, on it.
- `xmpp_user`: factory, `alice = await xmpp_user("alice")` registers alice@localhost on the
  `prosody` fixture and logs her in; `irc_user`: factory, `bob = await irc_user(inspircd, "bob")`.
  Users are disconnected at teardown.

A missing server binary fails the test with the Debian package to install; nothing is skipped.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from bridge.demo.servers import InspIRCd, NgIRCd, Prosody, ServerFailed, ServerMissing
from tests.integration.clients import IrcUser, XmppUser
from tests.servers.ejabberd import Ejabberd
from tests.servers.silc.server import SilcTestServer

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.integration)


@contextlib.asynccontextmanager
async def _running(server_class, request: pytest.FixtureRequest, tmp_path: Path):
    for attempt in (1, 2):  # a free port taken meanwhile (another worker's server): new ports
        where = tmp_path / (server_class.binary if attempt == 1 else f"{server_class.binary}-again")
        server = server_class(where, **getattr(request, "param", {}))
        try:
            await server.start()
            break
        except ServerFailed as exc:
            if attempt == 2:
                pytest.fail(str(exc), pytrace=False)
        except ServerMissing as exc:
            pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def prosody(request: pytest.FixtureRequest, tmp_path: Path):
    async with _running(Prosody, request, tmp_path) as server:
        yield server


@pytest.fixture
async def inspircd(request: pytest.FixtureRequest, tmp_path: Path):
    async with _running(InspIRCd, request, tmp_path) as server:
        yield server


@pytest.fixture
async def ngircd(request: pytest.FixtureRequest, tmp_path: Path):
    async with _running(NgIRCd, request, tmp_path) as server:
        yield server


@pytest.fixture
async def silc_server():
    """A running spec-written SILC test server (tests/servers/silc) on a free port."""
    async with SilcTestServer() as server:
        yield server


@pytest.fixture(scope="session")
def ejabberd():
    """One ejabberd for the session (Erlang takes a couple of seconds to start)."""
    try:
        server = Ejabberd()
        server.start()
    except (ServerMissing, ServerFailed) as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.remove()


@contextlib.asynccontextmanager
async def _users(server):
    users: list[XmppUser] = []

    async def make(name: str, password: str | None = None) -> XmppUser:
        password = password or f"{name}-password"
        await server.register(name, password)
        user = await XmppUser.login(server, name, password)
        users.append(user)
        return user

    try:
        yield make
    finally:
        for user in users:
            await user.close()


@pytest.fixture
async def xmpp_user(prosody: Prosody):
    async with _users(prosody) as make:
        yield make


@pytest.fixture
async def ejabberd_user(ejabberd: Ejabberd):
    async with _users(ejabberd) as make:
        yield make


@pytest.fixture
async def irc_user():
    users: list[IrcUser] = []

    async def make(server, nick: str, **options) -> IrcUser:
        user = IrcUser(server, nick, **options)
        users.append(user)
        await user.register()
        return user

    yield make
    for user in users:
        await user.close()
