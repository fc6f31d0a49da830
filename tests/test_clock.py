"""SteadyClock: wall-clock time that a system clock step does not move."""

from __future__ import annotations

from asynctask.daemon.clock import SteadyClock


class FakeClocks:
    def __init__(self) -> None:
        self.wall = 1_000_000.0
        self.mono = 50.0

    def tick(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


def test_it_follows_the_wall_clock_and_ignores_its_steps():
    clocks = FakeClocks()
    clock = SteadyClock(lambda: clocks.wall, lambda: clocks.mono)
    assert clock() == 1_000_000.0
    clocks.tick(2.5)
    assert clock() == 1_000_002.5
    clocks.wall -= 3600  # NTP steps the system clock back an hour: timers must not stall
    clocks.tick(1.0)
    assert clock() == 1_000_003.5
    clocks.wall += 7200  # ... or forward two hours: nothing may fire early
    clocks.tick(1.0)
    assert clock() == 1_000_004.5
