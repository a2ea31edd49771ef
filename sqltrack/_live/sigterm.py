"""SIGTERM while a run is tracked (Slurm preemption, ``scancel``, ``kill``).

:meth:`Run.start` and :meth:`Run.track` install a SIGTERM handler in the main thread
(elsewhere Python does not allow it, and nothing is installed). What it does depends on
the handler that was there before:

- the default action (terminate): inside :meth:`Run.track` it raises
  :class:`Terminated`, so the ``with`` block unwinds (your ``finally`` blocks run) and
  ``track`` records the ``terminated`` status; after :meth:`Run.start` alone it records
  the status at once. Then the process ends *as a terminated process would*: the default
  action is restored and SIGTERM is sent again (exit status ``-15``, ``143`` in a shell).
- a Python handler of yours (e.g. a checkpoint-and-requeue handler): it is called
  (chained) after the status has been noted; what it does next is up to it. ``track``
  records the ``terminated`` status when the block ends, however it ends.
- ignored (``SIG_IGN``): sqltrack leaves it alone; the process does not end on SIGTERM.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType


class Terminated(BaseException):
    """Raised in the main thread when SIGTERM arrives during :meth:`Run.track`.

    A ``BaseException``, like ``KeyboardInterrupt``, so ``except Exception`` does not
    swallow it.
    """


def install(on_signal: Callable[[], None], *, raise_terminated: bool) -> Callable[[], None] | None:
    """Install a SIGTERM handler; return a function that restores the previous one.

    ``on_signal`` is called first when SIGTERM arrives. Then a previous Python handler is
    chained, or else :class:`Terminated` is raised (``raise_terminated``) or the process
    is terminated. Returns ``None`` (and installs nothing) outside the main thread or
    when SIGTERM is ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGTERM)
    if previous == signal.SIG_IGN:
        return None

    def handler(signum: int, frame: FrameType | None) -> None:
        on_signal()
        if callable(previous):
            previous(signum, frame)
        elif raise_terminated:
            raise Terminated("SIGTERM received")
        else:
            terminate()

    signal.signal(signal.SIGTERM, handler)

    def restore() -> None:
        if signal.getsignal(signal.SIGTERM) is handler:
            signal.signal(signal.SIGTERM, previous)

    return restore


def terminate() -> None:
    """End the process as SIGTERM's default action does, flushing stdout/stderr first."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)  # the signal is delivered before this returns; a last resort otherwise
    os._exit(128 + signal.SIGTERM)
