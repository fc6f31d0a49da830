from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asynctask.core.aimd import AimdConfig, AimdLimit

configs = st.builds(
    AimdConfig,
    max_limit=st.integers(1, 64),
    increase=st.floats(0.01, 10),
    decrease=st.floats(0.01, 0.99),
    window=st.floats(0.1, 60),
    min_throttles=st.integers(1, 10),
    throttle_ratio=st.floats(0, 1),
    cooldown=st.none() | st.floats(0, 30),
    idle_decay=st.floats(0.1, 60),
)
events = st.lists(
    st.tuples(
        st.sampled_from(["success", "throttle", "other", "tick"]),
        st.floats(-5, 20),  # time step; negative = the clock went backwards
        st.booleans(),  # backlog
    ),
    max_size=200,
)


@settings(max_examples=150)
@given(configs, st.floats(-1e6, 1e9), events)
def test_limit_stays_within_one_and_max_under_any_events(config, start, script):
    aimd = AimdLimit(config, start)
    now, ended = start, 0
    for kind, step, backlog in script:
        now += step
        if kind == "success":
            aimd.on_success(now, backlog)
        elif kind == "throttle":
            aimd.on_throttle(now)
        elif kind == "other":
            aimd.on_other_end(now)
        else:
            aimd.tick(now, backlog)
        ended += kind != "tick"
        assert 1 <= aimd.limit <= config.max_limit
        attempts, throttles = aimd.window_counts
        assert 0 <= throttles <= attempts <= ended


def _simulate(aimd: AimdLimit, capacity: int, ticks: int, tick: float) -> list[int]:
    """A downstream that throttles every attempt beyond ``capacity`` running at once.

    Each tick the function has backlog and starts ``limit`` attempts, which all end one tick later:
    the first ``capacity`` succeed, the rest are throttled. Returns the limit seen at each tick.
    """
    seen = []
    for i in range(1, ticks + 1):
        running = aimd.limit
        seen.append(running)
        now = i * tick
        for _ in range(min(running, capacity)):
            aimd.on_success(now, backlog=True)
        for _ in range(running - capacity):
            aimd.on_throttle(now)
        aimd.tick(now, backlog=True)
    return seen


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_settles_around_the_downstream_capacity(data):
    capacity = data.draw(st.integers(1, 40), label="C")
    max_limit = data.draw(st.integers(capacity + 1, 4 * capacity + 10), label="max_limit")
    increase = data.draw(st.floats(0.5, 1.0), label="increase")
    decrease = data.draw(st.floats(0.3, 0.5), label="decrease")
    config = AimdConfig(max_limit=max_limit, increase=increase, decrease=decrease)
    seen = _simulate(AimdLimit(config, 0.0), capacity, ticks=300, tick=config.window / 10)

    warm = next((i for i, limit in enumerate(seen) if limit <= capacity), None)
    if warm is None:
        # Never cut: the downstream's throttle share at max_limit is below throttle_ratio, which
        # by design is not enough to cut (see test_throttles_below_either_threshold_do_not_cut).
        assert (max_limit - capacity) / max_limit < config.throttle_ratio
        assert set(seen) == {max_limit}
        return
    settled = seen[warm:]
    # A cut happens only while more than C run, i.e. from L >= C + 1.
    assert min(settled) >= (capacity + 1) * decrease - 1
    average = sum(settled) / len(settled)
    assert capacity * decrease - 1 <= average <= capacity + 1
    assert sum(limit <= capacity + 1 for limit in settled) >= len(settled) / 2


def test_successes_with_backlog_climb_to_max_limit():
    aimd = AimdLimit(AimdConfig(max_limit=8, initial=1), now=0.0)
    seen = []
    for i in range(200):
        aimd.on_success(i * 0.01, backlog=True)
        seen.append(aimd.limit)
    assert seen == sorted(seen)
    assert seen[-1] == 8
    # +increase / L per success, so dL/ds = 1/L: from 1 to 8 takes about (8**2 - 1**2) / 2 = 31.5.
    assert seen.index(2) == 0
    assert 28 <= seen.index(8) + 1 <= 36


def test_successes_without_backlog_teach_nothing():
    aimd = AimdLimit(AimdConfig(max_limit=8, initial=2), now=0.0)
    for i in range(100):
        aimd.on_success(i * 0.01, backlog=False)
    assert aimd.limit == 2


def test_throttles_above_both_thresholds_cut():
    aimd = AimdLimit(AimdConfig(max_limit=8), now=0.0)  # min_throttles=3, throttle_ratio=0.1
    for _ in range(20):
        aimd.on_success(1.0, backlog=False)
    aimd.on_throttle(1.0)
    aimd.on_throttle(1.0)
    assert aimd.limit == 8
    aimd.on_throttle(1.0)  # 3 throttles of 23 attempts: 13% >= 10%
    assert aimd.limit == 4


@pytest.mark.parametrize(
    ("successes", "throttles"),
    [
        (0, 2),  # ratio 100%, but fewer than min_throttles=3
        (28, 3),  # 3 throttles, but 3 / 31 < 10%
        (100, 9),
    ],
)
def test_throttles_below_either_threshold_do_not_cut(successes, throttles):
    aimd = AimdLimit(AimdConfig(max_limit=8), now=0.0)
    for _ in range(successes):
        aimd.on_success(1.0, backlog=False)
    for _ in range(throttles):
        aimd.on_throttle(1.0)
    assert aimd.limit == 8


@settings(max_examples=100)
@given(
    st.integers(0, 60),
    st.integers(0, 60),
    st.integers(0, 20),
    st.integers(1, 10),
    st.floats(0, 1),
)
def test_a_cut_happens_exactly_when_both_thresholds_are_met(
    successes, others, throttles, min_throttles, ratio
):
    config = AimdConfig(max_limit=16, min_throttles=min_throttles, throttle_ratio=ratio)
    aimd = AimdLimit(config, now=0.0)
    for _ in range(successes):
        aimd.on_success(1.0, backlog=False)  # no backlog: the limit stays put
    for _ in range(others):
        aimd.on_other_end(1.0)
    for _ in range(throttles):
        aimd.on_throttle(1.0)  # count and share only grow, so "met at some point" = "met now"
    met = throttles >= min_throttles and throttles >= ratio * (successes + others + throttles)
    assert aimd.limit == (8 if met else 16)


def test_cooldown_allows_one_cut_per_burst():
    aimd = AimdLimit(AimdConfig(max_limit=16, window=10.0), now=0.0)  # cooldown 2.5 s
    for _ in range(10):
        aimd.on_throttle(1.0)
    assert aimd.limit == 8
    for _ in range(10):
        aimd.on_throttle(3.4)  # attempts dispatched before the cut, coming back
    assert aimd.limit == 8
    aimd.on_throttle(3.5)
    assert aimd.limit == 4


def test_explicit_cooldown_and_initial():
    config = AimdConfig(max_limit=16, initial=10, cooldown=0.0, min_throttles=1)
    aimd = AimdLimit(config, now=0.0)
    aimd.on_throttle(0.0)
    aimd.on_throttle(0.0)
    assert aimd.limit == 2  # 10 -> 5 -> 2.5
    for _ in range(10):
        aimd.on_throttle(0.0)
    assert aimd.limit == 1  # never below one


def test_throttles_leave_the_window():
    aimd = AimdLimit(AimdConfig(max_limit=16, window=10.0), now=0.0)
    aimd.on_throttle(0.0)
    aimd.on_throttle(0.0)
    aimd.on_throttle(10.5)  # the first two have left the window: only one in it
    assert aimd.limit == 16
    assert aimd.window_counts == (1, 1)
    aimd.on_throttle(11.0)
    aimd.on_throttle(12.0)
    assert aimd.limit == 8


def test_idle_resets_to_initial_and_a_throttle_restarts_the_idle_clock():
    config = AimdConfig(max_limit=16, initial=12, idle_decay=30.0, min_throttles=1)
    aimd = AimdLimit(config, now=0.0)
    aimd.on_throttle(0.0)
    assert aimd.limit == 6
    aimd.tick(1.0, backlog=False)  # idle from 1.0
    aimd.tick(30.0, backlog=False)
    assert aimd.limit == 6
    aimd.on_throttle(30.5)  # news: idle from 30.5
    assert aimd.limit == 3
    aimd.tick(60.0, backlog=False)
    assert aimd.limit == 3
    aimd.tick(60.4, backlog=True)  # backlog: the idle period is over
    aimd.tick(61.0, backlog=False)
    aimd.tick(90.9, backlog=False)
    assert aimd.limit == 3
    aimd.tick(91.0, backlog=False)
    assert aimd.limit == 12


def test_idle_also_undoes_growth_beyond_initial():
    aimd = AimdLimit(AimdConfig(max_limit=8, initial=2, idle_decay=5.0), now=0.0)
    for _ in range(20):
        aimd.on_success(0.0, backlog=True)
    assert aimd.limit > 2
    aimd.on_success(1.0, backlog=False)
    aimd.tick(6.0, backlog=False)
    assert aimd.limit == 2


def test_clock_going_backwards_counts_as_the_latest_time():
    aimd = AimdLimit(AimdConfig(max_limit=8, window=10.0), now=100.0)
    aimd.on_throttle(100.0)
    aimd.on_throttle(50.0)  # recorded at 100, in the current slot
    assert aimd.window_counts == (2, 2)
    aimd.on_throttle(105.0)
    assert aimd.limit == 4
    aimd.tick(111.0, backlog=True)
    assert aimd.window_counts == (1, 1)  # the two at 100 have left, the one at 105 has not
    aimd.tick(116.0, backlog=True)
    assert aimd.window_counts == (0, 0)


def test_repr_shows_the_limit_and_the_window():
    aimd = AimdLimit(AimdConfig(max_limit=8, initial=4, min_throttles=6), now=0.0)
    assert repr(aimd) == "<AimdLimit limit=4/8 window: 0 attempts, 0 throttled>"
    for _ in range(5):
        aimd.on_throttle(1.0)
    for _ in range(6):
        aimd.on_other_end(1.0)
    aimd.on_success(1.0, backlog=False)
    assert repr(aimd) == "<AimdLimit limit=4/8 window: 12 attempts, 5 throttled>"


@pytest.mark.parametrize(
    "bad",
    [
        {"max_limit": 0},
        {"initial": 0},
        {"initial": 9},
        {"increase": 0.0},
        {"decrease": 1.0},
        {"decrease": 0.0},
        {"window": 0.0},
        {"min_throttles": 0},
        {"throttle_ratio": 1.5},
        {"cooldown": -1.0},
        {"idle_decay": 0.0},
    ],
)
def test_invalid_config_is_refused(bad):
    with pytest.raises(ValueError, match=r"must|cannot"):
        AimdConfig(**{"max_limit": 8, **bad})
