"""The demo's server launchers, with what the bench needs on top.

`bridge.demo.servers` starts Prosody and InspIRCd for the tests and the demo; the bench
adds a second XEP-0114 component for biboumi and lifts InspIRCd's per-IP and class
limits so thousands of load clients can connect from 127.0.0.1.
"""

from __future__ import annotations

import re
import secrets

from bridge.demo.servers import InspIRCd, Prosody

#: Clients per IP and per class for the bench (the demo's 1000 is too few for puppet_scale).
MAX_CLIENTS = 100_000


#: Prosody's garbage collector set-ups (https://prosody.im/doc/advanced_gc): `default` is
#: what Prosody 0.12 does unconfigured (incremental, collecting at 105 % of live memory),
#: `generational` is Lua 5.4's generational mode, the documented choice for less CPU at
#: the cost of memory; on this rig it doubles what the MUC room alone can carry.
PROSODY_GC = {"default": None, "generational": {"mode": "generational"}}


class BenchProsody(Prosody):
    """Prosody without mod_limits (the demo never loads it), with the chosen garbage
    collector set-up, plus the component `irc.localhost` for biboumi."""

    biboumi_jid = "irc.localhost"

    def __init__(self, workdir, gc: str = "generational") -> None:
        settings = {"gc": PROSODY_GC[gc]} if PROSODY_GC[gc] else {}
        super().__init__(workdir, log_level="warn", settings=settings)
        self.biboumi_secret = secrets.token_hex(16)

    def _write_config(self) -> None:
        super()._write_config()
        with open(self.config_path, "a") as config:
            # Both values are plain ASCII (a hostname, hex digits): no Lua escaping needed.
            config.write(f'Component "{self.biboumi_jid}"\n'
                         f'    component_secret = "{self.biboumi_secret}"\n')


class BenchInspIRCd(InspIRCd):
    """InspIRCd with flood limits lifted (the demo's default) and no per-IP or class caps.

    `netbuffersize` stays at its default: above 65534 InspIRCd silently falls back
    to 10240 and bursts crawl."""

    def __init__(self, workdir) -> None:
        super().__init__(workdir, flood_limits=False)

    def _write_config(self) -> None:
        super()._write_config()
        text = self.config_path.read_text()
        for key in ("localmax", "globalmax", "limit"):
            text, found = re.subn(rf'\b{key}="\d+"', f'{key}="{MAX_CLIENTS}"', text)
            if not found:
                raise RuntimeError(f"bench: the demo's InspIRCd config has no {key}= to lift")
        text += '<performance netbuffersize="65534" somaxconn="4096" clonesonconnect="no" quietbursts="yes">\n'
        self.config_path.write_text(text)
