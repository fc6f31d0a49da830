"""Resource limits: the wire format as pure logic, then the kernel's side with real processes.

The rlimit tests run a fresh interpreter that sandboxes itself with ``apply_rlimits``, as a
worker does, and reports what the kernel did. The cgroup tests need root and a writable
hierarchy; where the probe finds none they skip and say why.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asynctask.executor.cgroups import Cgroup, CgroupSupport, detect_cgroups
from asynctask.executor.limits import Limits, classify_exit

from .conftest import REPO, alive

MiB = 1 << 20


# --- Limits: wire format, validation, precedence ---------------------------------------------

limits_strategy = st.builds(
    Limits,
    memory=st.none() | st.integers(32 * MiB, 1 << 44),
    cpu=st.none() | st.floats(0.001, 1e7, allow_nan=False, allow_infinity=False),
    open_files=st.none() | st.integers(16, 1 << 20),
    processes=st.none() | st.integers(1, 1 << 22),
    file_size=st.none() | st.integers(1, 1 << 50),
)


@given(limits_strategy)
def test_wire_round_trip(limits: Limits) -> None:
    wire = limits.to_wire()
    assert Limits.from_wire(wire) == limits
    assert Limits.from_wire(json.loads(json.dumps(wire))) == limits
    assert set(wire) == {k for k in wire if getattr(limits, k) is not None}
    assert all(getattr(limits, k) is not None for k in wire)
    assert limits.is_empty == (wire == {})
    assert Limits.from_wire(wire).key == limits.key
    assert hash(limits.key) == hash(Limits.from_wire(wire).key)


def test_units_on_the_wire() -> None:
    limits = Limits.from_wire(
        {"memory": "256M", "cpu": "500ms", "open_files": 64, "processes": 8, "file_size": "2G"}
    )
    assert limits == Limits(
        memory=256 * MiB, cpu=0.5, open_files=64, processes=8, file_size=2 << 30
    )
    assert Limits.from_wire({"cpu": "2s", "memory": 64 * MiB}).to_wire() == {
        "memory": 64 * MiB,
        "cpu": 2.0,
    }
    assert Limits.from_wire({"memory": None}) == Limits()
    assert Limits.from_wire({}).is_empty


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({"memroy": "1G"}, "'memroy'"),
        ({"memory": "16M"}, "24 MiB just to start"),
        ({"memory": 0}, "'memory'"),
        ({"memory": -1}, "'memory'"),
        ({"memory": 256.0 * MiB}, "'memory'"),
        ({"memory": True}, "'memory'"),
        ({"memory": "lots"}, "'memory'"),
        ({"cpu": 0}, "'cpu'"),
        ({"cpu": -1}, "'cpu'"),
        ({"cpu": "0s"}, "'cpu'"),
        ({"cpu": "fast"}, "'cpu'"),
        ({"cpu": True}, "'cpu'"),
        ({"cpu": float("inf")}, "'cpu'"),
        ({"cpu": float("nan")}, "'cpu'"),
        ({"cpu": [1]}, "'cpu'"),
        ({"open_files": 15}, "'open_files'"),
        ({"open_files": "20"}, "'open_files'"),
        ({"open_files": 20.0}, "'open_files'"),
        ({"processes": 0}, "'processes'"),
        ({"processes": False}, "'processes'"),
        ({"file_size": 0}, "'file_size'"),
        ({"file_size": "0K"}, "'file_size'"),
    ],
)
def test_from_wire_rejects(raw: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValueError, match="limit") as caught:
        Limits.from_wire(raw)
    assert needle in str(caught.value)


def test_from_wire_rejects_a_non_mapping_and_the_constructor_checks_too() -> None:
    with pytest.raises(ValueError, match="table"):
        Limits.from_wire([("memory", "1G")])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'memory'"):
        Limits(memory=MiB)
    with pytest.raises(ValueError, match="'processes'"):
        Limits(processes=0)


def test_merged_precedence_config_then_function_then_submit() -> None:
    config = Limits(memory=1 << 30, cpu=60.0, open_files=1024)
    function = Limits(memory=512 * MiB, processes=16)
    submit = Limits(memory=256 * MiB, cpu=5.0)
    effective = config.merged(function).merged(submit)
    assert effective == Limits(memory=256 * MiB, cpu=5.0, open_files=1024, processes=16)
    assert config.merged(Limits()) is config
    assert Limits().merged(function) == function
    assert effective.key == Limits(256 * MiB, 5.0, 1024, 16, None).key
    assert effective.key != config.key
    assert not effective.is_empty


@pytest.mark.parametrize(
    ("returncode", "limits", "cpu_used", "expected"),
    [
        (None, Limits(cpu=1), None, None),
        (0, Limits(cpu=1), 5.0, None),
        (1, Limits(cpu=1), 5.0, None),
        (-signal.SIGXCPU, Limits(cpu=1), None, "cpu_limit"),
        (-signal.SIGXCPU, Limits(), None, "cpu_limit"),
        (-signal.SIGXFSZ, Limits(file_size=1), None, "file_size_limit"),
        (-signal.SIGKILL, Limits(cpu=2), 2.9, "cpu_limit"),
        (-signal.SIGKILL, Limits(cpu=2), 2.0, "cpu_limit"),
        (-signal.SIGKILL, Limits(cpu=2), 1.9, None),
        (-signal.SIGKILL, Limits(cpu=2), None, None),
        (-signal.SIGKILL, Limits(memory=64 * MiB), 9.0, None),
        (-signal.SIGTERM, Limits(cpu=1), 9.0, None),
        (-signal.SIGSEGV, Limits(cpu=1), None, None),
    ],
)
def test_classify_exit(
    returncode: int | None, limits: Limits, cpu_used: float | None, expected: str | None
) -> None:
    assert classify_exit(returncode, limits, cpu_used) == expected


# --- rlimits in a real worker-like process -----------------------------------------------------


def run_limited(
    limits: dict[str, Any], body: str, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter that applies ``limits`` to itself, then runs ``body``."""
    code = (
        "import errno, os, resource, signal, sys\n"
        "from asynctask.executor.limits import Limits, apply_rlimits\n"
        f"apply_rlimits(Limits.from_wire({limits!r}))\n"
        "print('LIMITED', flush=True)\n" + textwrap.dedent(body)
    )
    return run_python(code, timeout)


def run_python(code: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter that imports this checkout's ``asynctask``."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )


def test_every_rlimit_is_set_soft_equal_hard_except_cpu() -> None:
    result = run_limited(
        {"memory": "256M", "cpu": 1.5, "open_files": 40, "processes": 500, "file_size": "1M"},
        """
        names = ["AS", "CPU", "NOFILE", "NPROC", "FSIZE", "CORE"]
        print({n: resource.getrlimit(getattr(resource, "RLIMIT_" + n)) for n in names})
        """,
    )
    assert result.returncode == 0, result.stderr
    got = ast.literal_eval(result.stdout.splitlines()[-1])
    assert got == {
        "AS": (256 * MiB, 256 * MiB),
        "CPU": (2, 3),
        "NOFILE": (40, 40),
        "NPROC": (500, 500),
        "FSIZE": (MiB, MiB),
        "CORE": (0, 0),
    }


def test_core_dumps_are_off_even_without_limits() -> None:
    code = (
        "import resource\n"
        "CORE = resource.RLIMIT_CORE\n"
        "resource.setrlimit(CORE, (resource.getrlimit(CORE)[1],) * 2)\n"
        "before = resource.getrlimit(CORE)\n"
        "from asynctask.executor.limits import Limits, apply_rlimits\n"
        "apply_rlimits(Limits())\n"
        "print(before, resource.getrlimit(CORE))"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    before, after = ast.literal_eval(result.stdout.strip().replace(") (", "), ("))
    if before == (0, 0):
        pytest.skip("core dumps are already off for this test run: nothing to turn off")
    assert after == (0, 0)


def test_a_lower_hard_limit_is_never_raised() -> None:
    code = (
        "import resource\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (30, 30))\n"
        "resource.setrlimit(resource.RLIMIT_CPU, (50, 50))\n"
        "from asynctask.executor.limits import Limits, apply_rlimits\n"
        "apply_rlimits(Limits(open_files=1000, cpu=100))\n"
        "print(resource.getrlimit(resource.RLIMIT_NOFILE), resource.getrlimit(resource.RLIMIT_CPU))"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(30, 30) (50, 50)"


def test_memory_limit_raises_memory_error() -> None:
    result = run_limited(
        {"memory": "256M"},
        """
        small = bytearray(64 << 20)  # well under the limit: the sandbox is not just broken
        print("SMALL OK", flush=True)
        try:
            big = bytearray(512 << 20)
        except MemoryError:
            print("MEMORY_ERROR")
        else:
            print("ALLOCATED")
        """,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["LIMITED", "SMALL", "OK", "MEMORY_ERROR"]


def test_cpu_limit_kills_with_sigxcpu() -> None:
    started = time.monotonic()
    result = run_limited({"cpu": 1}, "while True:\n    pass\n", timeout=20)
    elapsed = time.monotonic() - started
    assert result.stdout.strip() == "LIMITED", result.stderr
    assert result.returncode == -signal.SIGXCPU
    assert elapsed < 10
    assert classify_exit(result.returncode, Limits(cpu=1)) == "cpu_limit"


def test_cpu_limit_ignored_sigxcpu_is_followed_by_sigkill_a_second_later() -> None:
    """Task code that ignores ``SIGXCPU`` still dies, at hard = soft + 1 CPU seconds."""
    code = (
        "import signal\n"
        "from asynctask.executor.limits import Limits, apply_rlimits\n"
        "apply_rlimits(Limits(cpu=1))\n"
        "signal.signal(signal.SIGXCPU, signal.SIG_IGN)\n"
        "while True:\n    pass\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code], cwd=REPO)
    try:
        deadline = time.monotonic() + 20
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            assert time.monotonic() < deadline, "the CPU-bound child was never killed"
            time.sleep(0.05)
    finally:
        if process.returncode is None and not pid:
            process.kill()
    process.returncode = returncode = os.waitstatus_to_exitcode(status)
    used = usage.ru_utime + usage.ru_stime
    assert returncode == -signal.SIGKILL
    # Past the soft limit (1 s), so SIGXCPU was ignored; rusage is sampled from ticks and
    # reads up to a few tenths low on a loaded machine, hence not 2.0.
    assert 1.5 <= used < 3.5
    assert classify_exit(returncode, Limits(cpu=1), used) == "cpu_limit"


def test_file_size_limit_fails_writes_with_efbig(tmp_path: Path) -> None:
    target = tmp_path / "big"
    result = run_limited(
        {"file_size": "1M"},
        f"""
        print(signal.getsignal(signal.SIGXFSZ) == signal.SIG_IGN, flush=True)
        try:
            with open({str(target)!r}, "wb") as out:
                for _ in range(4):
                    out.write(b"x" * (512 << 10))
        except OSError as exc:
            print(errno.errorcode[exc.errno])
        else:
            print("WROTE")
        """,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["LIMITED", "True", "EFBIG"]
    assert target.stat().st_size == MiB


def test_open_files_limit_fails_opens_with_emfile() -> None:
    result = run_limited(
        {"open_files": 20},
        """
        opened = []
        try:
            for _ in range(100):
                opened.append(open(os.devnull))
        except OSError as exc:
            print(len(opened), errno.errorcode[exc.errno])
        else:
            print(len(opened), "ALL")
        """,
    )
    assert result.returncode == 0, result.stderr
    count, code = result.stdout.split()[1:]
    assert code == "EMFILE"
    assert 0 < int(count) < 20


# --- cgroups --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def support() -> Iterator[CgroupSupport]:
    """The probe's findings; afterwards the shared ``asynctask`` parents these tests created."""
    found = detect_cgroups()
    parents = {parent for _, parent in found.parents if not os.path.exists(parent)}
    yield found
    for parent in parents:
        with contextlib.suppress(OSError):
            os.rmdir(parent)


def require(support: CgroupSupport, controller: str) -> None:
    if os.geteuid() != 0:
        pytest.skip(f"cgroup {controller} test needs root (euid {os.geteuid()})")
    if not getattr(support, controller):
        pytest.skip(f"cgroup {controller} controller unusable here: {support.description}")


@pytest.fixture
def groups() -> Iterator[list[Cgroup]]:
    """Groups a test made, removed even when it fails half-way."""
    made: list[Cgroup] = []
    yield made
    for group in made:
        group.remove()


def test_detect_never_raises_and_describes_itself(support: CgroupSupport) -> None:
    assert support.version in ("v1", "v2", "none")
    assert support.description
    assert "\n" not in support.description
    usable = [c for c in ("memory", "cpu", "pids") if getattr(support, c)]
    if support.version == "none":
        assert not usable
        assert support.description.startswith("rlimits only:")
    else:
        assert usable
        assert support.description.startswith(f"cgroup {support.version}: {', '.join(usable)}")


def test_detect_without_hierarchies_or_proc(tmp_path: Path) -> None:
    nowhere = detect_cgroups(str(tmp_path))
    assert nowhere.version == "none"
    assert nowhere.description == f"rlimits only: no cgroup hierarchy mounted under {tmp_path}"
    broken = detect_cgroups(proc_self=str(tmp_path / "missing"))
    assert broken.version == "none"
    assert broken.description.startswith("rlimits only: cannot read this process's cgroups")


def test_detect_a_fake_v2_tree_finds_it_unusable(tmp_path: Path) -> None:
    """A v2 mount whose directories are plain files: the probe fails, and says where."""
    tree = tmp_path / "cgroup"
    (tree / "svc").mkdir(parents=True)
    (tree / "svc" / "cgroup.controllers").write_text("cpu memory pids\n")
    (tree / "svc" / "cgroup.subtree_control").write_text("")
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "mountinfo").write_text(
        f"41 31 0:38 / {tree} rw,relatime - cgroup2 cgroup2 rw\n"
        "31 23 0:28 / /elsewhere rw - cgroup cgroup rw,memory\n"
    )
    (proc / "cgroup").write_text("0::/svc\n")
    found = detect_cgroups(str(tree), proc_self=str(proc))
    assert found.version == "none"
    assert found.description.startswith("rlimits only: no writable cgroup v2 controllers")
    assert str(tree / "svc" / "asynctask") in found.description
    assert not (tree / "svc" / "asynctask").exists()


def test_force_rlimits_only() -> None:
    forced = detect_cgroups(force_rlimits_only=True)
    assert forced == CgroupSupport(
        "none",
        False,
        False,
        False,
        "rlimits only: cgroups turned off by configuration (force_rlimits_only)",
    )
    assert forced.create("w1", Limits(memory=64 * MiB, processes=10)) is None


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "x" * 65, "sp ace", "é"])
def test_group_names_are_one_safe_path_component(support: CgroupSupport, name: str) -> None:
    with pytest.raises(ValueError, match="cgroup name"):
        support.create(name, Limits(memory=64 * MiB))
    with pytest.raises(ValueError, match="cgroup name"):
        detect_cgroups(force_rlimits_only=True).create(name, Limits())


def test_limits_that_need_no_cgroup_make_none(support: CgroupSupport) -> None:
    assert support.create("no-cgroup-needed", Limits(open_files=64, file_size=MiB)) is None
    assert support.create("no-cgroup-needed", Limits()) is None


ALLOCATE = """
import sys
sys.stdin.buffer.read(1)  # wait until the test has moved us into the group
chunks = []
for _ in range(300):
    chunk = bytearray(1 << 20)
    chunk[::4096] = b"\\1" * 256  # touch every page: untouched pages cost no memory
    chunks.append(chunk)
print("SURVIVED", flush=True)
"""


def test_memory_cgroup_oom_kills_the_worker(support: CgroupSupport, groups: list[Cgroup]) -> None:
    require(support, "memory")
    limits = Limits(memory=64 * MiB)
    group = support.create(f"test-oom-{os.getpid()}", limits)
    assert group is not None
    groups.append(group)
    assert all(os.path.isdir(path) for path in group.directories)
    assert not group.oom_killed()
    process = subprocess.Popen(
        [sys.executable, "-c", ALLOCATE], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        group.add(process.pid)
        assert process.pid in group.pids()
        assert group.name in Path(f"/proc/{process.pid}/cgroup").read_text()
        out, _ = process.communicate(b"g", timeout=60)
    finally:
        process.kill()
        process.wait()
    assert out == b""
    assert process.returncode == -signal.SIGKILL
    assert group.oom_killed()
    peak = group.memory_peak()
    assert peak is not None
    assert 32 * MiB < peak <= 64 * MiB
    assert classify_exit(process.returncode, limits, group.cpu_seconds()) is None
    with group:
        pass  # the context manager removes it
    assert not any(os.path.exists(path) for path in group.directories)
    assert group.remove()  # again: nothing left to do, still no error


def test_a_leftover_group_of_the_same_name_is_replaced(
    support: CgroupSupport, groups: list[Cgroup]
) -> None:
    require(support, "memory")
    name = f"test-stale-{os.getpid()}"
    first = support.create(name, Limits(memory=64 * MiB))
    assert first is not None
    groups.append(first)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        first.add(sleeper.pid)
        second = support.create(name, Limits(memory=128 * MiB))
        assert second is not None
        groups.append(second)
        assert sleeper.wait(timeout=5) == -signal.SIGKILL
        memory_dir = dict(support.parents)["memory"]
        limit = Path(memory_dir, name, "memory.limit_in_bytes").read_text()
        assert int(limit) == 128 * MiB
    finally:
        sleeper.kill()
        sleeper.wait()
    assert second.remove()


FORK_BOMB = """
import errno, json, os, sys, time
sys.stdin.buffer.read(1)
forked, failure = 0, None
for _ in range(100):
    try:
        pid = os.fork()
    except OSError as exc:
        failure = errno.errorcode[exc.errno]
        break
    if pid == 0:
        os.close(1)  # or the test's read of our stdout waits for every child
        time.sleep(60)
        os._exit(0)
    forked += 1
print(json.dumps({"forked": forked, "failure": failure}), flush=True)
"""


def test_pids_cgroup_contains_a_fork_bomb(support: CgroupSupport, groups: list[Cgroup]) -> None:
    require(support, "pids")
    group = support.create(f"test-pids-{os.getpid()}", Limits(processes=20))
    assert group is not None
    groups.append(group)
    process = subprocess.Popen(
        [sys.executable, "-c", FORK_BOMB], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        group.add(process.pid)
        out, _ = process.communicate(b"g", timeout=30)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 0
    report = json.loads(out)
    assert report["failure"] == "EAGAIN"
    assert 1 <= report["forked"] < 25
    sleepers = group.pids()
    assert len(sleepers) == report["forked"]  # the orphans are still in the group
    assert group.remove()
    assert not any(os.path.exists(path) for path in group.directories)
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in sleepers):
        assert time.monotonic() < deadline, "remove() left processes of the group alive"
        time.sleep(0.01)


def test_cpu_accounting_counts_children(support: CgroupSupport, groups: list[Cgroup]) -> None:
    require(support, "cpu")
    group = support.create(f"test-cpu-{os.getpid()}", Limits(cpu=30))
    assert group is not None
    groups.append(group)
    burn = (
        "import os, sys, time\n"
        "sys.stdin.buffer.read(1)\n"
        "if os.fork() == 0:\n"
        "    end = time.process_time() + 0.4\n"
        "    while time.process_time() < end: pass\n"
        "    os._exit(0)\n"
        "os.wait()\n"
    )
    process = subprocess.Popen([sys.executable, "-c", burn], stdin=subprocess.PIPE)
    try:
        group.add(process.pid)
        process.communicate(b"g", timeout=30)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 0
    used = group.cpu_seconds()
    assert used is not None
    assert 0.35 <= used < 5
    assert group.remove()


def test_detect_leaves_no_probe_groups_behind(support: CgroupSupport) -> None:
    if support.version == "none":
        pytest.skip(f"no cgroups to probe: {support.description}")
    again = detect_cgroups()
    assert again == support
    for _, parent in support.parents:
        probe = Path(parent, f"asynctask-probe-{os.getpid()}")
        assert not probe.exists()
