"""Serving (hwsim.serving): continuous batching of arriving requests under memory.

The check of issue 15: over a Poisson arrival stream faster than the device can
serve, the throughput saturates at what the memory-limited batch allows; below
it, each request runs alone at its own prefill and decode-step times."""

from __future__ import annotations

import json

import pytest
from conftest import run_hwsim

from hwsim.errors import InputError
from hwsim.serving import Request, poisson_arrivals, read_arrivals, serve
from hwsim.workload import workload_from_dict

LLAMA = {"name": "serve", "model": "llama-2-7b", "phase": "generate", "dtype": "fp16"}
TINY = {"name": "serve", "model": "tinyllama-1.1b", "phase": "generate", "dtype": "fp16",
        "seq_len": 256, "new_tokens": 32}


def wl(base, **fields):
    return workload_from_dict({**base, **fields}, "<test>")


def test_an_overloaded_stream_saturates_at_the_memory_limited_batch():
    """Llama-2-7B requests of 8,192 + 64 tokens on a 910B (64 GB): 12 fit beside the
    weights; at 100 requests/s the device runs full batches and delivers what 12
    decoding together allow, B O / ((O - 1) T_d(B) + B T_p)."""
    r = serve(wl(LLAMA, seq_len=8192, new_tokens=64), "ascend", rate_per_s=100.0,
              requests=72)
    t = r.totals
    assert t["memory_batch"] == 12
    assert max(b for kind, _, _, b in r.iterations if kind == "decode") <= 12
    assert t["mean_batch"] > 11
    bound = t["saturation_tokens_per_s"]
    assert 0.95 * bound <= t["throughput_tokens_per_s"] <= 1.01 * bound
    # doubling the rate buys nothing more: the memory, not the arrivals, limits it
    faster = serve(wl(LLAMA, seq_len=8192, new_tokens=64), "ascend", rate_per_s=200.0,
                   requests=72).totals
    assert faster["throughput_tokens_per_s"] == pytest.approx(
        t["throughput_tokens_per_s"], rel=0.02)


def test_h2o_fits_more_requests_and_raises_the_saturated_throughput():
    """4,096 + 256 tokens, overloaded: H2O at 12.5 % (512 tokens) fits 8x the requests and,
    the decode steps being most of the time, more than doubles the throughput. (With 64
    new tokens of an 8,192-token prompt the prefills dominate and it gains little.)"""
    runs = [serve(wl(LLAMA, seq_len=4096, new_tokens=256, pruning=p), "roofline",
                  rate_per_s=1000.0, requests=120)
            for p in ([], [{"method": "h2o", "keep": 0.125}])]
    dense, h2o = (r.totals for r in runs)
    assert h2o["memory_batch"] > 7 * dense["memory_batch"]
    assert h2o["throughput_tokens_per_s"] > 2 * dense["throughput_tokens_per_s"]
    for t in (dense, h2o):
        assert 0.95 * t["saturation_tokens_per_s"] <= t["throughput_tokens_per_s"] \
            <= 1.01 * t["saturation_tokens_per_s"]


def test_the_memory_limited_batch_counts_the_activations_that_grow_with_it():
    """Short requests (64 + 4 tokens of TinyLlama on a 32 GB V100): KV caches alone would
    let some 400,000 decode together, but each sequence also brings its rows of every
    activation; ``memory_batch`` counts them, so a decode step of that many fits the
    device (before, the saturation figure simulated a step that did not fit and the
    report ended in a capacity error) and a few more do not."""
    from hwsim.generation import decode_steps, phase_workload, policy_of, with_fields
    from hwsim.simulate import device_graph, model_graphs
    from hwsim.targets import resolve

    small = wl(TINY, seq_len=64, new_tokens=4)
    t = serve(small, "volta", rate_per_s=1.0, requests=3).totals
    b = t["memory_batch"]
    assert 1_000 < b < 100_000 and t["saturation_tokens_per_s"] > 0
    res = resolve("volta")

    def fits(batch: int) -> bool:
        w = with_fields(small, batch=batch)
        step = phase_workload(w, "decode", 1, 66, decode_steps(w, policy_of(w)))
        fp = res.target.footprint(device_graph(model_graphs(step)[0], step), res.spec,
                                  step.tiling)
        return fp.total_bytes <= res.target.capacity_bytes(res.spec)

    assert fits(b)
    assert not fits(int(b * 1.3))


def test_a_slow_stream_runs_each_request_alone():
    """Arrivals far apart: every request's TTFT is its prefill and its TPOT the batch-1
    decode step at its mean cache (within the cache grid's rounding)."""
    r = serve(wl(TINY), "volta", arrivals=[Request(i, 10.0 * i, 256, 32) for i in range(12)])
    t = r.totals
    assert t["mean_batch"] == pytest.approx(1.0)
    prefill = r.costs.prefill_s(256)
    assert t["ttft_p50_s"] == pytest.approx(prefill, rel=1e-9)
    step = r.costs.decode_s(1, 256 + 16 // r.kv_grid * r.kv_grid, 256)
    assert t["tpot_p50_s"] == pytest.approx(step, rel=0.03)
    rows = r.request_rows
    assert all(x["first_token_s"] >= x["arrival_s"] for x in rows)
    assert t["generated_tokens"] == 12 * 32


def test_max_batch_caps_the_running_requests():
    r = serve(wl(TINY), "roofline", rate_per_s=1000.0, requests=30, max_batch=4)
    assert max(b for kind, _, _, b in r.iterations if kind == "decode") == 4
    assert r.totals["saturation_tokens_per_s"] == pytest.approx(r.saturation_tokens_per_s(4))


def test_poisson_arrivals_are_reproducible_and_have_the_rate():
    a = poisson_arrivals(2.0, 4000, 10, 5, seed=7)
    assert a == poisson_arrivals(2.0, 4000, 10, 5, seed=7)
    assert a[0].arrival_s == 0.0
    rate = (len(a) - 1) / a[-1].arrival_s
    assert rate == pytest.approx(2.0, rel=0.05)  # 4,000 gaps: about 1.6 % standard error


def test_arrivals_past_the_clock_horizon_are_refused():
    """A rate so low that the arrivals overflow to infinity ran with NaN percentiles and an
    infinite makespan: arrivals are at most MAX_ARRIVAL_S apart from the start."""
    with pytest.raises(InputError, match="at most 1e.09 s"):
        poisson_arrivals(1e-308, 2, 10, 2)
    assert poisson_arrivals(1e-6, 2, 10, 2)[-1].arrival_s < 1e9


def test_arrivals_from_a_csv_file(tmp_path):
    path = tmp_path / "arrivals.csv"
    path.write_text("arrival_s,prompt_tokens,output_tokens\n0.5,128,8\n0.0,256,4\n1.0,64,1\n")
    reqs = read_arrivals(str(path))
    assert [(r.arrival_s, r.prompt_tokens, r.output_tokens) for r in reqs] == [
        (0.0, 256, 4), (0.5, 128, 8), (1.0, 64, 1)]
    r = serve(wl(TINY), "roofline", arrivals=reqs)
    rows = {x["prompt_tokens"]: x for x in r.request_rows}
    assert rows[64]["tpot_s"] is None and rows[128]["output_tokens"] == 8
    json.dumps(r.to_dict(), allow_nan=False)


@pytest.mark.parametrize("text, field", [
    ("arrival_s,prompt_tokens,output_tokens\n-1,128,8\n", "arrival_s"),
    ("arrival_s,prompt_tokens,output_tokens\n0,12.5,8\n", "prompt_tokens"),
    ("arrival_s,prompt_tokens,output_tokens\n0,128,0\n", "output_tokens"),
    ("arrival_s,prompt\n0,128\n", "prompt_tokens"),
])
def test_bad_arrival_files_are_one_line_errors(tmp_path, text, field):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(InputError) as e:
        read_arrivals(str(path))
    assert e.value.problems[0].field == field


def test_a_request_larger_than_the_memory_is_refused():
    with pytest.raises(InputError, match="GiB of KV cache"):
        serve(wl(LLAMA, seq_len=4096, new_tokens=8), "volta",
              arrivals=[Request(0, 0.0, 100_000, 8)])


def test_cli_serve_prints_and_writes_json(tmp_path):
    from conftest import dump_yaml

    path = dump_yaml(tmp_path / "gen.yaml", TINY)
    out = tmp_path / "serve.json"
    r = run_hwsim("serve", str(path), "-t", "roofline", "--rate", "2", "--requests", "10",
                  "--json", str(out), "--csv", str(tmp_path / "req.csv"))
    assert r.returncode == 0, r.stderr
    assert "throughput" in r.stdout and "TTFT" in r.stdout
    doc = json.loads(out.read_text())
    assert doc["schema"] == "hwsim.serving/1" and len(doc["requests"]) == 10
    assert (tmp_path / "req.csv").read_text().startswith("id,arrival_s")
    bad = run_hwsim("serve", str(path), "--rate", "0")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def test_an_arrivals_path_that_is_not_a_file_is_one_line(tmp_path):
    for path, needle in ((tmp_path / "none.csv", "arrivals file not found"),
                         (tmp_path, "is a directory")):
        with pytest.raises(InputError, match=needle):
            read_arrivals(str(path))


def test_a_run_generates_a_bounded_number_of_tokens():
    with pytest.raises(InputError, match="at most 4,194,304"):
        serve(wl(TINY, new_tokens=1024), "roofline", rate_per_s=1.0, requests=5000)
