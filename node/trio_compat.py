"""trio's `TaskStatus`, importable under both the type checker and the interpreter.

py-libp2p 0.8.1 requires trio-typing, whose stubs (`trio-stubs`, written for trio 0.2x) take precedence over
trio's own inline types for a type checker, and they do not export `TaskStatus` (trio_typing does). At run
time there is only trio. Drop this module when py-libp2p stops requiring trio-typing.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trio_typing import TaskStatus as TaskStatus
else:
    from trio import TaskStatus as TaskStatus
