"""The event engine and the analytical schedule on small task graphs with known answers."""

import pytest

from hwsim.engine import Task, analytical_latency, run_events


def double_buffered(n: int, load_s: float, compute_s: float, buffers: int = 2) -> list[Task]:
    """Load tile i on mte2, compute it on the cube; a buffer is reused every `buffers` tiles."""
    tasks = []
    for i in range(n):
        deps = (2 * (i - buffers) + 1,) if i >= buffers else ()
        tasks.append(Task("mte2", load_s, deps=deps, bound="memory"))
        tasks.append(Task("cube", compute_s, deps=(2 * i,)))
    return tasks


def test_double_buffering_overlaps_load_and_compute():
    # compute-bound: one load to fill the pipe, then the cube back to back
    tasks = double_buffered(8, 1.0, 1.5)
    assert run_events(tasks).latency_s == pytest.approx(1.0 + 8 * 1.5)
    # memory-bound: the loads back to back, then the last compute
    tasks = double_buffered(8, 2.0, 0.5)
    assert run_events(tasks).latency_s == pytest.approx(8 * 2.0 + 0.5)


def test_single_buffer_serializes():
    tasks = double_buffered(4, 1.0, 1.0, buffers=1)
    assert run_events(tasks).latency_s == pytest.approx(8.0)


def test_analytical_is_a_lower_bound_within_the_pipeline_fill():
    for load, compute in [(1.0, 1.5), (2.0, 0.5), (1.0, 1.0)]:
        tasks = double_buffered(16, load, compute)
        event = run_events(tasks).latency_s
        analytical = analytical_latency(tasks)
        assert analytical <= event + 1e-12
        assert event - analytical <= min(load, compute) + 1e-12  # the pipeline fill


def test_pool_contention_comes_out_of_the_run():
    # four cores each move one tile through DRAM with two channels: two rounds
    tasks = [Task(f"core{i}.mte2", 1.0, pool="dram") for i in range(4)]
    assert run_events(tasks, {"dram": 2}).latency_s == pytest.approx(2.0)
    assert run_events(tasks, {"dram": 4}).latency_s == pytest.approx(1.0)
    assert analytical_latency(tasks, {"dram": 2}) == pytest.approx(2.0)


def test_starts_and_ends_are_recorded():
    tasks = [Task("a", 1.0), Task("b", 2.0, deps=(0,)), Task("a", 0.5)]
    s = run_events(tasks)
    assert s.starts_s == (0.0, 1.0, 1.0)
    assert s.ends_s == (1.0, 3.0, 1.5)
    assert s.latency_s == 3.0


def test_forward_dependency_is_rejected():
    with pytest.raises(ValueError, match="later task"):
        run_events([Task("a", 1.0, deps=(1,)), Task("a", 1.0)])


def test_bound_is_the_busiest_resource_counting_pools_per_slot():
    from hwsim.engine import dominant_bound

    # 48 vector cores each busy 1 s computing, all sharing 4 DRAM slots for 2 s of
    # transfers each: the pool (48 x 2 / 4 = 24 s per slot) limits the op
    tasks = []
    for i in range(48):
        tasks.append(Task(f"vec{i}", 1.0, bound="compute"))
        tasks.append(Task(f"vec{i}.mte2", 2.0, pool="dram", bound="memory"))
    assert dominant_bound(tasks, {"dram": 4}) == "memory"
    # with as many slots as cores, each core's own work decides
    tasks = [Task(f"vec{i}", 3.0, bound="compute") for i in range(4)] + [
        Task(f"vec{i}.mte2", 1.0, pool="dram", bound="memory") for i in range(4)]
    assert dominant_bound(tasks, {"dram": 4}) == "compute"
    assert dominant_bound([]) == "latency"
