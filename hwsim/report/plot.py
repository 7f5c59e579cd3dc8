"""Quick plots of reports (publication plots come with hwsim.plot)."""

from __future__ import annotations


def plot_by_kind(reports, path: str) -> None:
    """Stacked bars: latency by op kind, one bar per report (target)."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    kinds = sorted({k for r in reports for k in r.ops["kind"].unique()})
    fig, ax = plt.subplots(figsize=(1.6 + 1.2 * len(reports), 3.2))
    bottoms = [0.0] * len(reports)
    labels = [r.target.preset for r in reports]
    for kind in kinds:
        vals = [float(r.ops.loc[r.ops["kind"] == kind, "latency_s"].sum()) * 1e3
                for r in reports]
        if not any(vals):
            continue
        ax.bar(labels, vals, bottom=bottoms, label=kind)
        bottoms = [b + v for b, v in zip(bottoms, vals)]
    ax.set_ylabel("latency (ms)")
    ax.set_title(reports[0].graph.header.get("name", ""))
    ax.legend(fontsize=7, frameon=False, bbox_to_anchor=(1.0, 1.0), loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_generation(reports, path: str) -> None:
    """A generation per report: each decode step's latency (top) and the KV cache one
    device holds (bottom) against the step, a line per target; with a baseline (the
    unpruned request, ``--baseline``), its steps dashed in the same colour."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from matplotlib.ticker import EngFormatter  # noqa: PLC0415

    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(6.4, 4.8))
    for i, r in enumerate(reports):
        colour = f"C{i}"
        runs = [(r, "-", r.target.preset)]
        if r.baseline is not None:
            runs.append((r.baseline, "--", f"{r.target.preset}, unpruned"))
        for rep, style, label in runs:
            steps = rep.steps
            if steps.empty:
                continue
            top.plot(steps["step"], steps["latency_s"], style, color=colour, label=label)
            bottom.plot(steps["step"], steps["kv_cache_bytes"], style, color=colour)
    top.yaxis.set_major_formatter(EngFormatter(unit="s"))
    bottom.yaxis.set_major_formatter(EngFormatter(unit="B"))
    top.set_ylabel("step latency")
    bottom.set_ylabel("KV cache per device")
    bottom.set_xlabel("decode step")
    wl = reports[0].workload
    top.set_title(f"{wl.name}: {wl.seq_len:,}-token prompt, {wl.new_tokens:,} new tokens",
                  fontsize=9)
    top.legend(fontsize=7, frameon=False, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
