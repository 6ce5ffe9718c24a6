"""A control connection that stays open: the benchmark polls nodes hundreds of times a second.

`node.control.ControlClient` opens a new Unix socket per call, which is right for the CLI; a poller that
did that would spend most of its time (and the node's) in connect/accept. The node's control server
already answers any number of requests on one connection (`_serve_one` loops), so this client keeps the
socket and speaks the same frames. One session belongs to one thread at a time.
"""

from __future__ import annotations

import socket
import struct
from pathlib import Path

from node.control import MAX_FRAME, ControlError, ControlRejected, ControlResponse, recv_exactly, socket_path
from protocols.encoding import decode, encode

# Well above any answer time of a healthy node, even a loaded one on two cores.
CALL_TIMEOUT_S = 30.0


class ControlSession:
    def __init__(self, data_dir: Path, timeout_s: float = CALL_TIMEOUT_S) -> None:
        self.path = socket_path(data_dir)
        self.timeout_s = timeout_s
        self._sock: socket.socket | None = None

    def call(self, request: object) -> object:
        """Send one request, return the answer; ControlRejected carries the node's error message.

        A connection the node closed (it drops idle clients after 30 s) is reopened once."""
        for attempt in (0, 1):
            sock = self._connect()
            try:
                payload = encode(request)
                sock.sendall(struct.pack(">I", len(payload)) + payload)
                (length,) = struct.unpack(">I", recv_exactly(sock, 4))
                data = recv_exactly(sock, length)
                break
            except (ConnectionError, BrokenPipeError):
                self.close()
                if attempt:
                    raise
            except BaseException:
                # A timeout or an interruption mid-answer: the late answer must not be read as the next one's.
                self.close()
                raise
        response = decode(ControlResponse, data, max_size=MAX_FRAME)
        if isinstance(response, ControlError):
            raise ControlRejected(response.message)
        return response

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _connect(self) -> socket.socket:
        if self._sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout_s)
            try:
                sock.connect(str(self.path))
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
                raise ConnectionError(f"no node is running with its control socket at {self.path}") from None
            self._sock = sock
        return self._sock

