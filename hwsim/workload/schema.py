"""The workload schema: every field, its type, its default and its meaning.

This is the one place where workload defaults live. A workload is either a
*model* workload (``model:`` a zoo name, or ``trace:`` a graph file) or a
*kernel* workload (``ops:`` a list of operators). ``hwsim.workload.loader``
checks a YAML file against these dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


def _f(default: Any, help: str, choices: tuple | None = None):
    if isinstance(default, (dict, list)):
        value = default
        return field(default_factory=lambda: type(value)(value),
                     metadata={"help": help, "choices": choices})
    return field(default=default, metadata={"help": help, "choices": choices})


ATTENTION_STRATEGIES = ("auto", "standard", "flash", "fastattention")
GEMM_STRATEGIES = ("auto", "openblas", "iaat", "autotsmm")
PLACEMENTS = ("spread", "compact", "interleave")
PHASES = ("prefill", "decode", "generate")
LOGITS = ("last", "all")
TRACE_FORMATS = ("hwsim", "spatten-csv")
# how the host issues the ops (hwsim.runtime): a vendor library called from compiled code,
# PyTorch eager, a captured graph (CUDA Graphs / ACL graph), a fused engine (TensorRT, MindIE)
RUNTIMES = ("library", "eager", "graph", "fused")


@dataclass(frozen=True)
class Tiling:
    """How ops are tiled; each target reads the fields it understands."""

    attention: str = _f("auto", "attention strategy", ATTENTION_STRATEGIES)
    block_q: int = _f(0, "query block (rows) of tiled attention; 0 = chosen by the target")
    block_kv: int = _f(0, "key/value block of tiled attention; 0 = chosen by the target")
    qk_preload: int = _f(0, "key blocks the cube runs ahead of the vector cores in a fused "
                            "two-level attention (Ascend; a kernel's qkPreloadNum); 0 = the "
                            "strategy's own (FastAttention: 1)")
    gemm: str = _f("auto", "GEMM strategy (CPU targets)", GEMM_STRATEGIES)
    threads: int = _f(0, "threads an op may use (CPU targets; OMP_NUM_THREADS); 0 = every core")
    placement: str = _f("spread", "where threads run and their pages live (CPU targets): "
                                  "spread (round-robin over dies, pages local), compact (fill "
                                  "a die first, pages local), interleave (spread, pages "
                                  "interleaved over every die)", PLACEMENTS)
    tiling_mask: bool = _f(True, "causal mask built per tile instead of read from DRAM")
    tiling_allreduce: bool = _f(False, "overlap tensor-parallel all-reduce with compute")


@dataclass(frozen=True)
class Workload:
    """What to simulate."""

    name: str = _f("", "workload name; default: the file's stem")
    description: str = _f("", "free text")
    model: str = _f("", "a model of the zoo (hwsim trace --list), e.g. llama-2-7b")
    trace: str = _f("", "path of a traced graph (.json.gz), relative to the workload file")
    trace_format: str = _f("hwsim", "format of `trace`: hwsim (a graph file) or spatten-csv "
                               "(SpAtten's released CSV traces)", TRACE_FORMATS)
    ops: list = _f([], "operators of a kernel study, instead of a model")
    phase: str = _f("prefill", "prefill (whole prompt), decode (one step) or generate (the "
                               "prompt's prefill, then new_tokens - 1 decode steps, each over "
                               "the KV cache it has; hwsim.generation)", PHASES)
    batch: int = _f(1, "sequences processed together")
    seq_len: int = _f(128, "prompt tokens (prefill, generate) or new tokens (decode)")
    kv_len: int = _f(0, "tokens already in the KV cache (decode)")
    new_tokens: int = _f(0, "tokens a generation produces: the prefill gives the first, each "
                            "decode step one more (phase: generate)")
    exact: bool = _f(False, "a generation simulates every decode step; false: steps of "
                            "different KV length are bracketed, simulated at the ends of "
                            "each bracket and interpolated within step_error (phase: generate)")
    step_error: float = _f(0.01, "a bracketed generation's bound on any step's relative error "
                                 "in latency, energy and DRAM bytes (phase: generate)")
    image: dict = _f({}, "a vision-language model's image, {height: H, width: W} in pixels as "
                         "given to its processor (which resizes it); {}: the model's default. "
                         "The visual tokens follow from it (docs/workloads.md)")
    frames: int = _f(0, "video frames a vision-language model reads (0: a still image)")
    text_len: int = _f(0, "a vision-language prefill's text tokens (the chat template's prefix "
                          "and the question), instead of seq_len: seq_len is then text_len + "
                          "the image's visual tokens (0: give seq_len, the whole sequence)")
    dtype: str = _f("fp16", "data type of weights and activations")
    devices: int = _f(1, "devices the model is split over, tensor-parallel (heads and FFN)")
    logits: str = _f("last", "positions whose next-token logits a prefill computes: last (what "
                             "inference computes before sampling: Hugging Face generate's "
                             "logits_to_keep=1, vLLM) or all (scoring, perplexity, training)",
                     LOGITS)
    segments: dict = _f({}, "token ranges by name, e.g. {text: [0, 35], visual: [35, 611]}")
    pruning: list = _f([], "pruning steps, applied in order: [{method: fastv, ...}]")
    routing: dict = _f({}, "mixture of experts: tokens per expert, {mode: balanced} (default), "
                           "{mode: skew, alpha: 1.2} (Zipf-like) or {mode: histogram, shares: "
                           "[...]} / {mode: histogram, layers: {3: [...]}} (hwsim.moe)")
    runtime: str = _f("library", "how the host issues the ops: library (a vendor library called "
                      "from compiled code, as the measured kernel benchmarks), eager (PyTorch "
                      "eager), graph (CUDA Graphs / ACL graph), fused (TensorRT-like engine); "
                      "host cost per op in hwsim/runtime.py", RUNTIMES)
    onchip_carry: bool = _f(True, "a tensor one op writes stays in the last-level cache for "
                                   "the ops that read it while it fits and is not evicted by "
                                   "what runs between, neither written to nor read from DRAM "
                                   "(volta, ascend: half the L2; armv8: half the L3; "
                                   "hwsim.onchip); false: every op starts with a cold "
                                   "cache, as before issue 18")
    target: str = _f("", "the machine this workload is written for: a target (volta), a preset "
                         "(volta-v100-sxm2) or a hardware YAML path (relative to the workload "
                         "file), used when the command line or the API names none (--target "
                         "wins); '': roofline")
    tiling: Tiling = field(default_factory=Tiling, metadata={"help": "tiling strategies"})
    source: str = _f("", "the file this workload was read from (set by the loader)")

    def __post_init__(self) -> None:
        # Workload(tiling={"attention": "flash"}) is what a YAML file says: accept the
        # mapping, checked as the loader checks a file's (one InputError naming the keys)
        if isinstance(self.tiling, Tiling):
            return
        from ..errors import Collector  # noqa: PLC0415
        from .loader import _tiling  # noqa: PLC0415 - the loader imports this module

        errs = Collector(self.source or "Workload(...)")
        if isinstance(self.tiling, dict):
            tiling = _tiling(self.tiling, errs)
        else:
            tiling = None
            errs.add("tiling", f"expected a hwsim.workload.Tiling or a mapping of its fields "
                               f"({', '.join(f.name for f in fields(Tiling))}), got "
                               f"{type(self.tiling).__name__} {self.tiling!r}")
        errs.raise_if_any()
        object.__setattr__(self, "tiling", tiling)

    @property
    def kind(self) -> str:
        return "ops" if self.ops else "model"

    def to_dict(self) -> dict:
        """The workload as a mapping the loader reads back to an equal workload.

        ``text_len`` is left out (the loader has turned it into ``seq_len``), and so
        are ``image`` and ``frames`` while unset, since giving them names an image, and
        ``onchip_carry`` while on (its default: only a workload that turns it off says so)."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "text_len" or (f.name in ("image", "frames") and not v) or (
                    f.name == "onchip_carry" and v):
                continue
            if isinstance(v, Tiling):
                v = {tf.name: getattr(v, tf.name) for tf in fields(Tiling)}
            out[f.name] = v
        return out


# Parameters of each operator kind in an `ops:` list: name -> (default, help).
# A default of ... means required.
OP_PARAMS: dict[str, dict[str, tuple[Any, str]]] = {
    "matmul": {"m": (..., "rows of A and C"), "n": (..., "columns of B and C"),
               "k": (..., "reduction dim"), "batch": (1, "independent products"),
               "trans_a": (False, "A is stored transposed, [k, m] (the kernel's read order)"),
               "trans_b": (False, "B is stored transposed, [n, k], as nn.Linear's weight")},
    "attention": {"heads": (..., "query heads"), "kv_heads": (None, "key/value heads (GQA); "
                  "default heads"), "head_dim": (..., "per-head dim"),
                  "q_len": (..., "queries"), "kv_len": (..., "keys"),
                  "causal": (False, "causal mask"), "batch": (1, "sequences"),
                  "window": (0, "sliding window: a query sees only the window most recent "
                             "keys up to its position (0: every key)"),
                  "v_len": (0, "value rows each query weights, chosen per row by a top-k of "
                               "its probabilities (local value pruning; 0: all)"),
                  "sparse_keys": (0, "keys each block of sparse_block queries attends to, "
                                     "selected at run time (0: all)"),
                  "sparse_block": (0, "queries sharing one key selection (with sparse_keys; "
                                      "0: 1)"),
                  "lsb_bits": (0, "progressive quantization: low bits of the keys re-fetched "
                                  "for rows the target finds flat (0: none)"),
                  "kv_stored": (0, "cached tokens the kv_len keys are the kept survivors "
                                   "of, lying scattered among them (0: contiguous)")},
    "softmax": {"rows": (..., "rows"), "cols": (..., "row length")},
    "layernorm": {"rows": (..., "rows"), "cols": (..., "normalized dim")},
    "rmsnorm": {"rows": (..., "rows"), "cols": (..., "normalized dim")},
    "elementwise": {"fn": (..., "function, e.g. exp, add, gelu"),
                    "elements": (..., "output elements")},
    "reduce": {"fn": ("sum", "sum, max, mean, ..."), "elements": (..., "input elements"),
               "out_elements": (1, "output elements")},
    "topk": {"n": (..., "candidates per row"), "k": (..., "kept per row"), "rows": (1, "rows")},
    "gather": {"elements": (..., "elements gathered"), "rows": (1, "index count")},
    "embedding": {"tokens": (..., "lookups"), "dim": (..., "row width"),
                  "vocab": (32000, "table rows")},
    "rope": {"elements": (..., "elements rotated")},
    "concat": {"elements": (..., "output elements"), "parts": (2, "inputs")},
    "kv_write": {"elements": (..., "new entries written"),
                 "cache_elements": (0, "cache size after the write; default = elements")},
    "moe_experts": {"tokens": (..., "tokens routed"), "hidden": (..., "model width"),
                    "ffn": (..., "each expert's intermediate size"),
                    "experts": (..., "experts of the layer"),
                    "top_k": (2, "experts each token runs"),
                    "act": ("silu", "silu (SwiGLU when gated), gelu, gelu_tanh or relu"),
                    "gated": (True, "gate and up projections (SwiGLU); false: one input "
                                    "projection")},
}
OP_COMMON = {"kind": "operator kind", "dtype": "data type (default: the workload's)",
             "name": "label in reports",
             "repeat": "how many times the op runs back to back (default 1; one op and one "
                       "report row whatever the count)"}
