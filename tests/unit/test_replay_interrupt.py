"""The replay's interrupt (shared.recording.cli._terminate_as_interrupt): a signal stops
the block even when its handler runs inside a finaliser, where Python reports the
exception as ignored and drops it."""

from __future__ import annotations

import signal
import sys

import pytest

from shared.recording.cli import _terminate_as_interrupt


class SignalledWhileFinalised:
    """An object whose finaliser receives ``number``: the handler runs inside ``__del__``."""

    def __init__(self, number: int) -> None:
        self.number = number

    def __del__(self) -> None:
        signal.raise_signal(self.number)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_caught_inside_a_finaliser_still_stops_the_block(sig: signal.Signals) -> None:
    steps = 0
    with pytest.raises(KeyboardInterrupt, match=sig.name), _terminate_as_interrupt():
        SignalledWhileFinalised(sig)  # dropped at once: __del__ swallows the interrupt
        while steps < 10_000_000:
            steps += 1
    assert steps < 10_000_000


def test_a_signal_outside_any_finaliser_stops_the_block_once() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"), _terminate_as_interrupt():
        signal.raise_signal(signal.SIGTERM)
    # the handlers are back as they were
    assert signal.getsignal(signal.SIGTERM) is before


def test_other_ignored_exceptions_still_reach_the_previous_hook(
        monkeypatch: pytest.MonkeyPatch) -> None:
    reached: list[BaseException | None] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: reached.append(u.exc_value))

    class Faulty:
        def __del__(self) -> None:
            raise ValueError("a finaliser's own fault")

    with _terminate_as_interrupt():
        Faulty()
    assert [str(e) for e in reached] == ["a finaliser's own fault"]
