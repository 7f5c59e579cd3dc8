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
