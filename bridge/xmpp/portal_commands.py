"""Portal users' own ad-hoc command (XEP-0050 with an XEP-0004 form) on the component:
`configure`, where a user sets or clears, per portal network, the SASL account and
password their IRC connection logs in with (kept sealed: `bridge.store.sealed`).

Any user the portal lets in may run it (the operator's commands stay admins'); it is
listed to them in disco#items on the commands node (XEP-0050 section 2.2). The form
names the accounts set, never a password; the password field is text-private (XEP-0004
3.3). A change counts from the user's next connection to that network.
"""

from __future__ import annotations

import structlog
from slixmpp import ComponentXMPP
from slixmpp.exceptions import XMPPError
from slixmpp.plugins.xep_0030.stanza import DiscoInfo, DiscoItems

from bridge.config_types import PortalConfig
from bridge.core.portal import allowed
from bridge.store.sealed import SaslCredentials
from bridge.xmpp.commands import NS_COMMANDS, NS_DATA, Sessions
from bridge.xmpp.stanza import bare

log = structlog.get_logger(__name__)

#: node -> name.
COMMANDS = {"configure": "Configure your IRC logins (SASL)"}


class PortalCommands:
    def __init__(self, config: PortalConfig, jid: str, credentials: SaslCredentials) -> None:
        self.config = config
        self.jid = jid
        self.credentials = credentials
        self.forms = None  # slixmpp's xep_0004, once a stream is set up

    def setup(self, stream: ComponentXMPP) -> None:
        stream.register_plugin("xep_0004")
        stream.register_plugin("xep_0050", pconfig={"session_db": Sessions()})  # kept if registered
        self.forms = stream.plugin["xep_0004"]
        for node, name in COMMANDS.items():
            stream.plugin["xep_0050"].add_command(jid=self.jid, node=node, name=name,
                                                  handler=getattr(self, f"_{node}"))

    def serves(self, node: str) -> bool:
        return node in COMMANDS

    def allowed(self, sender: str) -> bool:
        return allowed(bare(sender), self.config.users)

    def items(self, ifrom: str, items: DiscoItems) -> DiscoItems:
        if self.allowed(ifrom):
            for node, name in COMMANDS.items():
                items.add_item(self.jid, node, name)
        return items

    def info(self, node: str) -> DiscoInfo | None:
        if node not in COMMANDS:
            return None
        info = DiscoInfo()
        info.add_identity("automation", "command-node", COMMANDS[node])
        info.add_feature(NS_COMMANDS)
        info.add_feature(NS_DATA)
        return info

    # -- the command (slixmpp XEP-0050 handlers) ---------------------------

    def _configure(self, iq, session: dict) -> dict:
        user = bare(str(session["from"]))
        accounts = self.credentials.accounts(user)
        now = "; ".join(f"{network}: {account}" for network, account in sorted(accounts.items()))
        form = self.forms.make_form("form", "IRC logins",
                                    "Your IRC connection to a network logs in (SASL PLAIN) with the "
                                    "account and password given here, from its next connection. "
                                    f"Set now: {now or 'none'}.")
        form.add_field(var="network", ftype="list-single", label="Network", required=True,
                       options=[{"label": n, "value": n} for n in self.config.networks],
                       value=self.config.networks[0] if len(self.config.networks) == 1 else None)
        form.add_field(var="account", ftype="text-single", label="Account")
        form.add_field(var="password", ftype="text-private", label="Password")
        form.add_field(var="clear", ftype="boolean", label="Forget the login for this network", value=False)
        session.update(payload=form, next=self._configured, has_next=False)
        return session

    def _configured(self, form, session: dict) -> dict:
        user = bare(str(session["from"]))
        if isinstance(form, list):
            form = next((item for item in form if item.plugin_attrib == "form"), None)
        values = form.get_values() if form is not None else {}
        network = str(values.get("network") or "")
        if network not in self.config.networks:
            raise XMPPError("bad-request", text="no such portal network")
        if values.get("clear") in (True, "1", "true"):
            done = self.credentials.clear(user, network)
            note = f"{network}: login forgotten." if done else f"{network}: there was no login."
        else:
            account, password = str(values.get("account") or ""), str(values.get("password") or "")
            try:
                self.credentials.set(user, network, account, password)
            except ValueError as why:
                raise XMPPError("bad-request", text=str(why)) from None
            except OSError as exc:  # the key file cannot be made or read
                log.error("portal_secret_file_failed", error=str(exc))
                raise XMPPError("internal-server-error", text="the bridge cannot keep logins now") from None
            note = f"{network}: your next connection logs in as {account}."
        session.update(payload=None, next=None, has_next=False, notes=[("info", note)])
        return session
