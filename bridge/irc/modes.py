"""Channel MODE changes, parsed as the server says its modes take parameters.

Which modes take a parameter is the server's to say (modern IRC, "CHANMODES" and
"PREFIX" parameters of RPL_ISUPPORT): type A (lists, `b e I`) and type B (`k`) always,
type C (`l`) only when set, type D never; prefix modes (`o v`, and `q a h` where offered)
always. The `irc` library assumes one fixed list (`bklvohq`), so `+eo mask bob` or
`-l+o bob` gave bob's op to the wrong parameter.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

#: What a server that does not say CHANMODES is taken to have (RFC 2811 modes).
DEFAULT_CHANMODES = ("beI", "k", "l", "")
DEFAULT_PREFIX = "ov"


def parse(arguments: Iterable[str], chanmodes: object = None,
          prefix_modes: str = DEFAULT_PREFIX) -> Iterator[tuple[str, str, str | None]]:
    """(sign, mode, parameter) for each change in `MODE <channel> <arguments...>`.
    `chanmodes`: the CHANMODES value as the library keeps it (a list of four strings)."""
    kinds = list(chanmodes) if isinstance(chanmodes, list) and len(chanmodes) >= 4 else []
    always = "".join(str(k) for k in (kinds or DEFAULT_CHANMODES)[:2]) + prefix_modes
    when_set = str((kinds or DEFAULT_CHANMODES)[2])
    words = " ".join(arguments).split()
    if not words:
        return
    params = iter(words[1:])
    sign = ""
    for mode in words[0]:
        if mode in "+-":
            sign = mode
        elif sign:
            takes = mode in always or (sign == "+" and mode in when_set)
            yield sign, mode, next(params, None) if takes else None
