"""SpAtten's HBM2 rows and banks (hwsim.dram) in its fetches: kept tokens' scattered rows
cost activations in time and energy, a dense stream runs at peak, the released traces'
pruned rows hit their rows less often than the dense ones."""

from __future__ import annotations

import copy
import dataclasses

import pytest
from conftest import ROOT

import hwsim
from hwsim.accelerators.spatten import TARGET
from hwsim.accelerators.spatten.energy import prices_pj
from hwsim.accelerators.spatten.work import dram_cost
from hwsim.dram import Gather
from hwsim.errors import InputError
from hwsim.targets import resolve
from hwsim.workload import workload_from_dict
from hwsim.workload.spatten_csv import read as read_csv

DATA = ROOT.parent / "shared" / "data" / "spatten"
WORKLOADS = ROOT / "workloads"
HEADER = ("iteration_id,layer_id,head_id,embedding_length_D,sentence_length_L,key_fetch_num,"
          "quant_key_bit,quant_query_bit,auto_requant_thres,if_requant,auto_requant_incre,"
          "value_fetch_num,quant_value_bit,if_accumulate_importance,"
          "if_rescale_previous_importance,if_topk,topk")


def spec(name="spatten"):
    return resolve(name, {}).spec


def trace(tmp_path, rows):
    path = tmp_path / "t.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return read_csv(str(path), "fp32")


def hbm_s(tasks):
    return sum(t.duration_s for t in tasks if t.unit.startswith("hbm"))


def stage(w, name):
    return next(st for st in w.stages if st.name == name)


def test_trace_rows_keep_their_sentence_as_the_stored_tokens(tmp_path):
    g = trace(tmp_path, ["0,0,0,64.0,100,100,6,16,0.05,False,4,100,6,False,False,False,-1",
                         "0,1,0,64.0,100,50,6,16,0.05,False,4,10,6,False,False,False,-1"])
    att = [op for op in g.ops if op.kind == "attention"]
    assert "kv_stored" not in att[0].attrs  # every token kept: one contiguous run
    assert att[1].attrs["kv_stored"] == 100 and att[1].attrs["kv_len"] == 50


def test_pruned_keys_scattered_among_stored_cost_row_activations(tmp_path):
    """200 kept keys of 4,000 cached (5 %), 6-bit: the same bytes as 200 contiguous keys,
    but most 32-byte bursts open a row, so the channels take longer and every activation
    is priced."""
    s = spec()
    g = trace(tmp_path, ["0,0,0,64.0,4000,200,6,16,0.05,True,4,200,6,False,False,False,-1"])
    att = next(op for op in g.ops if op.kind == "attention")
    lsb = next(op for op in g.ops if op.kind == "gather")
    dense_g = copy.deepcopy(g)
    for op in dense_g.ops:
        op.attrs.pop("kv_stored", None)
    att_co = next(op for op in dense_g.ops if op.kind == "attention")
    lsb_co_op = next(op for op in dense_g.ops if op.kind == "gather")
    scattered, contiguous = TARGET.work(att, g, s), TARGET.work(att_co, dense_g, s)
    assert scattered.bytes_by_class() == contiguous.bytes_by_class()
    # a stream costs what a stream of its bytes does (16 requests in flight per channel,
    # refresh: hwsim.dram); scattered, more
    stream = dram_cost(s, Gather.stream(stage(contiguous, "fetch_k").read_bytes, 32))
    assert stage(contiguous, "fetch_k").slowdown == stream.slowdown > 1.0
    assert stage(scattered, "fetch_k").slowdown > 1.2 * stream.slowdown
    assert scattered.stats["dram_activations"] > 3 * contiguous.stats["dram_activations"]
    assert scattered.stats["dram_row_hits"] < contiguous.stats["dram_row_hits"]
    t_sc, t_co = TARGET.lower(att, g, s), TARGET.lower(att_co, dense_g, s)
    assert hbm_s(t_sc) > hbm_s(t_co)
    # contiguous: one 32-byte transaction per channel cycle, times the stream's slowdown
    tx = sum((-(-st.read_bytes // 32) + -(-st.write_bytes // 32)) * st.slowdown
             for st in contiguous.stages if not st.unit)
    assert hbm_s(t_co) == pytest.approx(tx / s.clock_hz)
    # each activation carried as an action of the HBM tasks, priced at dram_act_pj
    acts = sum(t.actions.get("dram_act", 0.0) for t in t_sc)
    assert acts == pytest.approx(scattered.stats["dram_activations"])
    assert prices_pj(s)["dram_act"] == s.dram_act_pj == 909.0
    # the LSB re-fetch reads the kept keys' low bits where they lie: scattered too
    lsb_sc, lsb_co = TARGET.work(lsb, g, s), TARGET.work(lsb_co_op, dense_g, s)
    assert stage(lsb_sc, "fetch_lsb").slowdown > 1.5 * stage(lsb_co, "fetch_lsb").slowdown
    assert "HBM rows:" in TARGET.describe(att, g, s)


def test_values_chosen_by_the_top_k_are_a_scattered_subset():
    """Local value pruning fetches 64 of 1,024 value rows: a gather, the keys a stream."""
    ops = [{"kind": "attention", "heads": 1, "head_dim": 64, "q_len": 1, "kv_len": 1024,
            "v_len": 64}]
    r = hwsim.simulate(workload_from_dict({"name": "t", "ops": ops}, "<t>"), "spatten",
                       fidelity="event")
    op = r.graph.ops[0]
    w = TARGET.work(op, r.graph, r.target.spec)
    assert stage(w, "fetch_k").slowdown == dram_cost(w.spec, Gather.stream(131072, 32)).slowdown
    assert stage(w, "fetch_v").slowdown > 1.2 * stage(w, "fetch_k").slowdown
    m = TARGET.metrics(r)
    assert m["dram_activations"] == pytest.approx(w.stats["dram_activations"])
    assert 0.0 < m["dram_row_hit_rate"] < 1.0


def test_energy_breakdown_prices_activations_in_dram():
    """The report's DRAM energy is the bytes' movement and I/O plus the activations."""
    r = hwsim.simulate(WORKLOADS / "spatten-bert-base-pruned.yaml", "spatten",
                       fidelity="analytical")
    s, m = r.target.spec, TARGET.metrics(r)
    t = r.totals
    dram_bytes = t["dram_read_bytes"] + t["dram_write_bytes"]
    expected = (dram_bytes * s.dram_pj_per_byte + m["dram_activations"] * s.dram_act_pj) * 1e-12
    assert t["energy_breakdown_j"]["dram"] == pytest.approx(expected, rel=1e-6)


needs_data = pytest.mark.skipif(
    not all((DATA / f).exists() for f in ("gpt2-small-wikitext2-dense.csv",
                                          "gpt2-small-wikitext2-pruned.csv")),
    reason=f"released SpAtten traces not in {DATA}")


@needs_data
def test_released_pruned_trace_hits_its_rows_less_often_than_the_dense_one():
    """Dense GPT-2 small streams every key row: one activation per 1 KB row (31 of 32
    bursts hit). Pruned, its kept rows lie scattered among the sentence: fewer hits."""
    def run(kind):
        return TARGET.metrics(hwsim.simulate(
            WORKLOADS / f"spatten-gpt2-small-trace-{kind}.yaml", "spatten"))
    dense, pruned = run("dense"), run("pruned")
    assert dense["dram_row_hit_rate"] > 0.96
    assert pruned["dram_row_hit_rate"] < dense["dram_row_hit_rate"] - 0.05


def test_an_ops_workload_states_stored_tokens_and_a_wrong_one_is_refused(tmp_path):
    def run(sets=(), **extra):
        op = {"kind": "attention", "heads": 1, "head_dim": 64, "q_len": 1, "kv_len": 200,
              **extra}
        return hwsim.simulate(workload_from_dict({"name": "t", "ops": [op]}, "<t>"),
                              "spatten", fidelity="event", sets=sets)
    scattered, contiguous = run(kv_stored=4000), run()
    assert scattered.totals["dram_read_bytes"] == contiguous.totals["dram_read_bytes"]
    assert scattered.totals["energy_breakdown_j"]["dram"] > \
        contiguous.totals["energy_breakdown_j"]["dram"]
    # fp16 keys of 128 B, 5 % kept: each kept row opens its own HBM row, yet with 16
    # requests in flight per channel the scattered rows spread over both pseudo-channels
    # while the contiguous ones sit in one at a time (hwsim.dram; the command schedule
    # agrees): about as fast, 1 % faster here; with as many in flight as it likes the
    # scattered fetch is the slower
    assert scattered.totals["latency_s"] == pytest.approx(contiguous.totals["latency_s"],
                                                          rel=0.05)
    deep = ["target.dram_outstanding_per_channel=0"]
    assert run(kv_stored=4000, sets=deep).totals["latency_s"] > \
        run(sets=deep).totals["latency_s"]
    with pytest.raises(InputError, match="kv_stored=100 is below kv_len=200"):
        run(kv_stored=100)


def test_the_rtl_hbm_and_its_wrong_settings_are_refused():
    """The preset is the RTL's memory: 16 requests in flight per channel
    (DRAMSimDPIDriverRamulator2.cpp), all-bank refresh at Ramulator 2's HBM2_2Gbps
    tREFI / tRFC; refresh without room in tREFI (all-bank or per-bank), a refresh kind
    that is not modelled and a negative count are refused with the field named."""
    s = spec()
    assert (s.dram_outstanding_per_channel, s.dram_refresh) == (16, "all-bank")
    assert (s.dram_trefi_s, s.dram_trfc_s) == pytest.approx((3.9e-6, 350e-9))
    assert s.dram_geometry.outstanding == 16 and s.dram_timing.refresh == "all-bank"
    for sets, match in ((["target.dram_trfc_s=4us"], "dram_trfc_s: a refresh"),
                        (["target.dram_refresh=per-bank", "target.dram_trfcsb_s=4us"],
                         "dram_trfcsb_s: a per-bank refresh"),
                        (["target.dram_refresh=bank-wise"],
                         "dram_refresh: expected one of all-bank, per-bank, none"),
                        (["target.dram_outstanding_per_channel=-1"], "must be >= 0")):
        with pytest.raises(InputError, match=match):
            hwsim.simulate(WORKLOADS / "spatten-bert-base-pruned.yaml", "spatten", sets=sets)
    # the former model: as many requests in flight as it likes, no refresh: a stream at peak
    free = resolve("spatten", {"dram_outstanding_per_channel": 0, "dram_refresh": "none"}).spec
    assert dram_cost(free, Gather.stream(131072, 32)).slowdown == 1.0
    assert dram_cost(s, Gather.stream(131072, 32)).slowdown > 1.6


def test_refreshes_are_counted_and_priced_per_bank_refreshed():
    """The HBM refreshes each of its 16 x 2 x 16 banks once per tREFI while the run
    lasts, busy or not: the run's count is its latency x 512 / 3.9 us, and the ops carry
    as many ``dram_refresh_bank`` actions (each over its own time). The preset prices
    them at 0 (no primary source gives HBM2's refresh energy); priced, they add exactly
    that count's energy to the DRAM's and change no time. Without refresh none are
    counted, whatever the price."""
    def run(*sets):
        r = hwsim.simulate(WORKLOADS / "spatten-bert-base-pruned.yaml", "spatten",
                           fidelity="analytical", sets=list(sets))
        return r, TARGET.metrics(r)
    (r0, m0), (r1, _) = run(), run("target.dram_refresh_bank_pj=50")
    s = r0.target.spec
    assert s.dram_refresh_bank_pj == 0.0 and prices_pj(s)["dram_refresh_bank"] == 0.0
    latency = r0.totals["latency_s"]
    assert m0["dram_bank_refreshes"] == pytest.approx(latency * 512 / 3.9e-6, rel=1e-9)
    assert r1.totals["latency_s"] == latency
    added = r1.totals["energy_breakdown_j"]["dram"] - r0.totals["energy_breakdown_j"]["dram"]
    # the ops' own times add up to the run's (ops run one after another)
    assert added == pytest.approx(50e-12 * m0["dram_bank_refreshes"], rel=0.01)
    none, m_none = run("target.dram_refresh=none", "target.dram_refresh_bank_pj=50")
    assert m_none["dram_bank_refreshes"] == 0.0
    assert none.totals["latency_s"] < latency
    plain = run("target.dram_refresh=none")[0]
    assert none.totals["energy_j"] == plain.totals["energy_j"]


def test_per_bank_refresh_is_an_option_beside_all_bank_and_none():
    """``dram_refresh: per-bank``: a REFsb every tREFI / 16 per pseudo-channel, its bank
    blocked 160 ns (Ramulator 2's HBM2_2Gbps tRFC_SB) while the controller serves the
    others. With as many requests in flight as it likes, a long stream loses only its
    tail (the last row of a bank refreshed meanwhile waits: ``tail_s``, which the
    target's streaming requests hide, as the first access's latency), where all-bank
    refreshes that block the pseudo-channel 350 ns every 3.9 us cost 10 %. At the RTL's 16 in
    flight a stream's window lies in one row: a refresh of that bank stalls it, and the
    closed form (refreshes meeting rows at random) charges per-bank more than all-bank
    (hwsim.dram: the Ramulator round-robin order meets a RoBaRaCoCh stream less often)."""
    ab = spec()
    pb = resolve("spatten", {"dram_refresh": "per-bank"}).spec
    none = resolve("spatten", {"dram_refresh": "none"}).spec
    assert (pb.dram_trfcsb_s, pb.dram_trrefd_s) == pytest.approx((160e-9, 8e-9))
    assert pb.dram_timing.refresh == "per-bank" and pb.dram_timing.trfcsb_s == 160e-9
    stream = Gather.stream(1 << 22, 32)
    for outstanding in (0, 16):
        cost = {k: dram_cost(dataclasses.replace(s, dram_outstanding_per_channel=outstanding),
                             stream)
                for k, s in (("all-bank", ab), ("per-bank", pb), ("none", none))}
        slow = {k: c.slowdown for k, c in cost.items()}
        assert 0.0 < cost["per-bank"].tail_s <= 177e-9 and cost["all-bank"].tail_s == 0.0
        if outstanding == 0:
            assert slow["per-bank"] == slow["none"] < 1.09 * slow["none"] < slow["all-bank"]
        else:
            assert slow["per-bank"] > slow["all-bank"] > 1.1 * slow["none"]
