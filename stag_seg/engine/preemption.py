"""Preemption: SIGTERM or SIGINT asks a stream to save its state and stop at the next step.

Slurm sends SIGTERM before it kills a preempted or timed-out job (``KillWait`` seconds later,
30 by default), torchrun forwards SIGTERM and SIGINT to its workers, and Ctrl-C sends SIGINT.
While :class:`PreemptionSignals` is active, either signal only sets a flag; the loop reads it at
the next step boundary (:meth:`PreemptionSignals.requested`, agreed over the ranks, so that every
rank saves the same step), saves the state and raises :class:`Preempted`. ``tools/test_tta.py``
then exits with :data:`EXIT_PREEMPTED`; ``--resume`` continues with identical results.

Data-loader workers must live until that step is done: slurm signals every process of a job, and
a torchrun worker's loader processes share its process group, to which torchrun forwards the
signal. PyTorch's workers die on SIGTERM from anyone but their parent and stop on SIGINT, which
fails the step in the main process; :func:`shield_workers` makes them ignore both (they still
exit with the main process, which they watch, and on SIGKILL). A signal that arrives while the
workers start would reach them before they can ignore it, so the loop starts them with both
signals blocked (:func:`stop_signals_blocked`); they inherit the block, ignore the signals,
then unblock, and the main process receives what arrived once it unblocks.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

from ..dist import all_ranks

__all__ = ['EXIT_PREEMPTED', 'Preempted', 'PreemptionSignals', 'shield_workers',
           'stop_signals_blocked']

#: The exit status of a run that saved its state because it was asked to stop (BSD's
#: EX_TEMPFAIL: "try again later"), distinct from an error (1), a usage error (2) and a death by
#: a signal (128 + n).
EXIT_PREEMPTED = 75

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Preempted(Exception):
    """The run saved its state at a step boundary and stopped, because it was asked to."""


class PreemptionSignals:
    """Turn SIGTERM and SIGINT into a request to stop at the next step, while active.

    A context manager: entering installs the handlers (only in the main thread, where Python
    delivers signals), leaving puts the previous ones back. Every further signal is taken as
    the same request: torchrun forwards the SIGINT of a Ctrl-C that its workers already got,
    so a second signal cannot mean "stop now". SIGKILL stops a run without saving.
    """

    def __init__(self) -> None:
        self.signal: str | None = None
        self._previous: dict = {}

    def __enter__(self) -> PreemptionSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in _SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame) -> None:
        # only a flag: the handler may run in the middle of anything, a log write included
        if self.signal is None:
            self.signal = signal.Signals(signum).name

    def requested(self) -> str | None:
        """The signal that asked to stop, on this rank or any other (a collective with several
        processes, so every rank must call it at the same step); None to go on."""
        if all_ranks(self.signal is None):
            return None
        return self.signal or 'a signal to another rank'


class _IgnoreStopSignals:
    """A data loader's ``worker_init_fn`` that ignores SIGTERM and SIGINT, then calls the
    loader's own (picklable, for the ``spawn`` start method)."""

    def __init__(self, init_fn) -> None:
        self.init_fn = init_fn

    def __call__(self, worker_id: int) -> None:
        for sig in _SIGNALS:  # after PyTorch installed its own worker handlers
            signal.signal(sig, signal.SIG_IGN)
        # started under stop_signals_blocked(): what arrived meanwhile is now discarded
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
        if self.init_fn is not None:
            self.init_fn(worker_id)


def shield_workers(loader) -> None:
    """Make ``loader``'s worker processes ignore SIGTERM and SIGINT, so that a preempted run
    still has its data for the step it finishes."""
    if not isinstance(loader.worker_init_fn, _IgnoreStopSignals):
        loader.worker_init_fn = _IgnoreStopSignals(loader.worker_init_fn)


@contextmanager
def stop_signals_blocked() -> Iterator[None]:
    """Block SIGTERM and SIGINT in this thread inside the block (processes it starts inherit
    the block); what arrived is delivered when it ends."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
