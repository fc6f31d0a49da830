"""The memory-saving containers of the daemon: ``Interner`` and ``LiveIndex``."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from asynctask.daemon import interning
from asynctask.daemon.interning import Interner
from asynctask.daemon.liveindex import LiveIndex
from tests.core.helpers import make_task


def test_equal_maps_and_small_payloads_share_one_object() -> None:
    shared = Interner()
    first, second = {"retries": 3, "timeout": 600.0}, {"retries": 3, "timeout": 600.0}
    assert shared.mapping(first) is first
    assert shared.mapping(second) is first
    assert shared.mapping({}) is shared.mapping({})
    payload = b"\x92\x90\x80"
    assert shared.payload(bytes(payload)) is shared.payload(bytes(payload))
    big = bytes(interning.SMALL_PAYLOAD + 1)
    assert shared.payload(big) is big
    assert shared.name("".join(["ten", "ant"])) is shared.name("".join(["tena", "nt"]))


def test_maps_with_mutable_values_are_never_shared_and_the_table_is_bounded() -> None:
    shared = Interner()
    limits = {"limits": {"concurrency": 1}}
    assert shared.mapping(limits) is limits
    assert shared.mapping({"limits": {"concurrency": 1}}) is not limits
    for n in range(interning.LIMIT + 10):
        shared.mapping({"expires_at": float(n)})
    assert repr(shared) == f"<Interner maps={interning.LIMIT} payloads=0>"
    late = {"expires_at": -1.0}
    assert shared.mapping(late) is late  # not remembered: no error, no growth


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["set", "pop", "del"]),
            st.sampled_from(["a", "b", "c"]),
            st.sampled_from(["x", "y", "z"]),
        ),
        max_size=60,
    )
)
def test_live_index_behaves_like_a_dict_of_pairs(steps) -> None:
    index, model = LiveIndex(), {}
    for op, tenant, task_id in steps:
        key = (tenant, task_id)
        if op == "set":
            task = make_task(tenant=tenant)
            index[key] = task
            model[key] = task
        elif op == "pop":
            assert index.pop(key) is model.pop(key, None)
        elif key in model:
            del index[key]
            del model[key]
        assert len(index) == len(model)
        assert (key in index) == (key in model)
        assert index.get(key) is model.get(key)
    assert sorted(id(t) for t in index.values()) == sorted(id(t) for t in model.values())
