"""py-libp2p's log records into our logging tree.

py-libp2p 0.8.1 sets `propagate=False` on its `libp2p` logger when imported, so nothing it logs reaches
the handlers configured on the root logger (the node's log file, pytest's capture). We re-attach it under
our own logger name space, at WARNING by default: at INFO and below it is very chatty per message.
"""

from __future__ import annotations

import logging
import os

LIBP2P_LOGGER = "libp2p"
# py-libp2p 0.8.1's swarm logs a connection that arrives while the host shuts down as a WARNING with a full
# traceback (`LifecycleError: Cannot schedule task after service has stopped`), formatted into the message
# itself ("[ADDCONN_FAIL] add_conn failed for peer %s: %r\n%s"): nothing went wrong, the node is stopping
# (peers that lost their connection redial it at once; a stopped manager logged a few). The record keeps
# its first line; the traceback is dropped.
SHUTDOWN_NOISE = "Cannot schedule task after service has stopped"
# What of the library's logging we keep by default: its warnings are about dropped messages and peers.
DEFAULT_LIBP2P_LEVEL = logging.WARNING


class ShutdownNoise(logging.Filter):
    """Strips the traceback from py-libp2p's records of connections refused during shutdown (see SHUTDOWN_NOISE)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and SHUTDOWN_NOISE in str(record.exc_info[1]):
            record.exc_info = None
            record.exc_text = None
        message = record.getMessage()
        if SHUTDOWN_NOISE in message and "\n" in message:
            record.msg, record.args = message.split("\n", 1)[0], ()
        return True


def attach_libp2p_logger(level: int = DEFAULT_LIBP2P_LEVEL) -> None:
    """Make `libp2p.*` records reach the root logger's handlers again. Idempotent."""
    library = logging.getLogger(LIBP2P_LOGGER)
    library.propagate = True
    swarm = logging.getLogger(LIBP2P_LOGGER + ".network.swarm")
    if not any(isinstance(f, ShutdownNoise) for f in swarm.filters):
        swarm.addFilter(ShutdownNoise())
    if library.level == logging.NOTSET or library.level < level:
        library.setLevel(level)
    if "LIBP2P_DEBUG" in os.environ:  # the library's own switch for verbose logs: respect it
        return
    # py-libp2p 0.8.1: some modules pin their own logger to INFO at import (auto_connector logs every
    # dial round), which overrides the level above; let them inherit it instead.
    for name, child in list(logging.root.manager.loggerDict.items()):
        if name.startswith(LIBP2P_LOGGER + ".") and isinstance(child, logging.Logger) and 0 < child.level < level:
            child.setLevel(logging.NOTSET)
