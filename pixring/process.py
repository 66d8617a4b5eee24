"""Process helpers every pixring command shares.

``die_with_parent`` is the ``preexec_fn`` (or the first call of a child) that ties a child
process's life to its parent's: the balancer's workers and ring builders, the processes of
``pixring up`` and of the capacity tool. Linux only; elsewhere it does nothing.
"""

from __future__ import annotations

import ctypes
import signal

__all__ = ["die_with_parent"]

PR_SET_PDEATHSIG = 1  # prctl(2)


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask Linux to signal this process when its parent dies: no orphan workers, ever."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, sig)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass
