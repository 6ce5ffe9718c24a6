"""Refuse a listen address another process already listens on.

py-libp2p 0.8.1: the TCP transport sets SO_REUSEPORT on its listening sockets (for hole punching), so a
second node told to `--listen` on a port a first node uses binds it too, and the kernel splits incoming
connections between the two processes. So before the host starts we bind the address ourselves with
SO_REUSEADDR only: Linux refuses that bind (EADDRINUSE) while any socket listens on the port, with or
without SO_REUSEPORT, and allows it over connections merely in TIME_WAIT. The probe socket is closed at
once; a process that takes the port between the probe and the library's bind is not caught (a race
of milliseconds at start-up, against an operator mistake that is otherwise silent for ever).
"""

from __future__ import annotations

import errno
import socket

from multiaddr import Multiaddr

from node.operator_errors import OperatorError


class ListenError(OperatorError):
    """The listen address is taken, not local, or not ours to bind."""


def ensure_listen_address_free(listen: str, option: str = "--listen") -> None:
    """Raise `ListenError` if `listen` cannot be ours alone (in use, not a local address, a privileged
    port). Port 0 (an ephemeral port) only checks that the address is local. Multiaddrs without /ip4 or
    /ip6 (a DNS name) are left to the library."""
    address = Multiaddr(listen)
    names = [p.name for p in address.protocols()]
    if "tcp" not in names:
        return
    if "ip4" in names:
        family, host = socket.AF_INET, address.value_for_protocol("ip4")
    elif "ip6" in names:
        family, host = socket.AF_INET6, address.value_for_protocol("ip6")
    else:
        return
    port = int(address.value_for_protocol("tcp"))
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            advice = "stop what uses it, or" if exc.errno == errno.EADDRINUSE else "use"
            raise ListenError(f"cannot listen on {listen}: {exc.strerror}: {advice} another {option} address or port") from None
