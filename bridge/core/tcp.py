"""TCP options that make a dead peer fail the connection within a bound.

An application ping notices a silent link; these are the kernel's backstop for
the case it cannot see: data written into a blackhole. With TCP_USER_TIMEOUT
(Linux, RFC 5482 in spirit) a connection whose sent data stays unacknowledged
for `timeout` is closed with an error instead of retransmitting for ~15
minutes; keepalive probes do the same for an idle link. Options the platform
lacks are skipped.
"""

from __future__ import annotations

import socket


def bound_silence(sock: socket.socket, timeout: float) -> None:
    """Fail `sock` once its peer has not acknowledged anything for about `timeout` seconds."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", timeout / 2), ("TCP_KEEPINTVL", timeout / 6),
                        ("TCP_KEEPCNT", 3), ("TCP_USER_TIMEOUT", timeout * 1000)):
        if hasattr(socket, name):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), max(1, int(value)))
