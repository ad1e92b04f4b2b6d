"""Who is in which channel, and which account they are logged in to.

The server does not say in which channels a quitting or renamed user was;
the roster remembers it from NAMES, JOIN, PART, KICK, QUIT and NICK, and who is
channel operator or voiced from the MODE changes seen while in the channel. Nicks
and channels are compared folded by the network's CASEMAPPING (ISUPPORT;
rfc1459 unless the server says otherwise: "[]\\~" are the upper case of "{}|^").
"""

from __future__ import annotations

_RFC1459 = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ[]\\~", "abcdefghijklmnopqrstuvwxyz{}|^")
_STRICT = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ[]\\", "abcdefghijklmnopqrstuvwxyz{}|")
_ASCII = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_MAPPINGS = {"rfc1459": _RFC1459, "strict-rfc1459": _STRICT, "ascii": _ASCII}
#: Folded names remembered (every relayed line folds its sender and channel a few times).
FOLD_CACHE = 4096


class Roster:
    def __init__(self) -> None:
        self._table = _RFC1459
        self._folded: dict[str, str] = {}
        self._members: dict[str, set[str]] = {}  # folded channel -> folded nicks
        self._accounts: dict[str, str] = {}  # folded nick -> account
        self._modes: dict[tuple[str, str], str] = {}  # (folded channel, nick) -> "o", "v", "ov"

    def set_casemapping(self, name: str) -> None:
        """Fold by the server's CASEMAPPING from now on (unknown names: rfc1459)."""
        self._table = _MAPPINGS.get(str(name).lower(), _RFC1459)
        self._folded.clear()

    def fold(self, name: str) -> str:
        folded = self._folded.get(name)
        if folded is None:
            if len(self._folded) >= FOLD_CACHE:
                self._folded.clear()
            folded = self._folded[name] = name.translate(self._table)
        return folded

    # Channels

    def joined(self, channel: str, nick: str) -> None:
        self._members.setdefault(self.fold(channel), set()).add(self.fold(nick))

    def reset(self, channel: str) -> None:
        """We (re)joined `channel`: NAMES is about to list everyone."""
        self._members[self.fold(channel)] = set()
        self._drop_modes(lambda chan, _: chan == self.fold(channel))

    def set_mode(self, channel: str, nick: str, mode: str, on: bool) -> str:
        """Channel operator ("o") or voice ("v") given or taken; returns the user's rank
        after it: "op", "voice" or ""."""
        key = (self.fold(channel), self.fold(nick))
        if key[1] not in self._members.get(key[0], ()):
            return ""
        modes = self._modes.get(key, "").replace(mode, "") + (mode if on else "")
        if modes:
            self._modes[key] = modes
        else:
            self._modes.pop(key, None)
        return self.rank(channel, nick)

    def rank(self, channel: str, nick: str) -> str:
        modes = self._modes.get((self.fold(channel), self.fold(nick)), "")
        return "op" if "o" in modes else "voice" if "v" in modes else ""

    def left(self, channel: str, nick: str) -> None:
        members = self._members.get(self.fold(channel))
        if members is not None:
            members.discard(self.fold(nick))
        self._modes.pop((self.fold(channel), self.fold(nick)), None)
        self._forget_if_gone(nick)

    def drop(self, channel: str) -> None:
        """We left `channel`: forget who was there."""
        for nick in self._members.pop(self.fold(channel), set()):
            self._forget_if_gone(nick)
        self._drop_modes(lambda chan, _: chan == self.fold(channel))

    def clear(self) -> None:
        self._members.clear()
        self._accounts.clear()
        self._modes.clear()

    def channels_of(self, nick: str) -> list[str]:
        """Folded names of the channels `nick` is in."""
        folded = self.fold(nick)
        return [chan for chan, members in self._members.items() if folded in members]

    def quit(self, nick: str) -> list[str]:
        """`nick` left the network; returns the folded channels they were in."""
        channels = self.channels_of(nick)
        folded = self.fold(nick)
        for chan in channels:
            self._members[chan].discard(folded)
        self._accounts.pop(folded, None)
        self._drop_modes(lambda _, who: who == folded)
        return channels

    def rename(self, old: str, new: str) -> list[str]:
        """`old` is now `new`; returns the folded channels they are in."""
        channels = self.channels_of(old)
        old_f, new_f = self.fold(old), self.fold(new)
        for chan in channels:
            self._members[chan].discard(old_f)
            self._members[chan].add(new_f)
        if old_f in self._accounts:
            self._accounts[new_f] = self._accounts.pop(old_f)
        for chan in channels:
            if (chan, old_f) in self._modes:
                self._modes[chan, new_f] = self._modes.pop((chan, old_f))
        return channels

    # Accounts

    def set_account(self, nick: str, account: str | None) -> None:
        """`account` None (or the protocol's "*") means not logged in."""
        if account and account != "*":
            if self.channels_of(nick):
                self._accounts[self.fold(nick)] = account
        else:
            self._accounts.pop(self.fold(nick), None)

    def account(self, nick: str) -> str | None:
        return self._accounts.get(self.fold(nick))

    def _drop_modes(self, which) -> None:
        for key in [key for key in self._modes if which(*key)]:
            del self._modes[key]

    def _forget_if_gone(self, nick: str) -> None:
        folded = self.fold(nick)
        if not any(folded in members for members in self._members.values()):
            self._accounts.pop(folded, None)
