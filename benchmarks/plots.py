"""PNG plots (matplotlib, Agg backend): recall vs QPS per band, QPS vs selectivity, cost vs N."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .datasets import BANDS
from .metrics import best_at, pareto


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def engine_order(rows: list[dict]) -> list[str]:
    """Engine names in the order they first appear in ``rows`` (the run order)."""
    return list(dict.fromkeys(r["engine"] for r in rows))


def _style(i: int) -> dict:
    markers = "os^vD<>px*h"
    return {"marker": markers[i % len(markers)], "color": f"C{i % 10}"}


MISS_FLOOR = 1e-4  # 1 - recall below this (recall 1.0 included) is drawn at it


def _miss(recall: float) -> float:
    return max(1.0 - recall, MISS_FLOOR)


def _recall_axis(ax, k: int) -> None:
    """x = 1 - recall on a log scale, reversed so better is to the right, labelled in recall: 0.9, 0.99 and
    0.999 are equally far apart, where a linear recall axis squeezes every engine worth comparing into its
    last few pixels."""
    ax.set_xscale("log")
    ticks = [1.0, 0.1, 0.01, 0.001, MISS_FLOOR]
    ax.set_xticks(ticks, ["0", "0.9", "0.99", "0.999", "1.0"])
    ax.set_xticks([], minor=True)
    ax.set_xlim(1.2, MISS_FLOOR / 1.5)  # reversed: recall grows to the right
    ax.set_xlabel(f"recall@{k} (tie-aware; log scale of 1 - recall)")


def recall_vs_qps(rows: list[dict], path: Path, k: int, title: str) -> Path:
    """One panel per band: every run as a faint point, each engine's Pareto front as a line, against
    1 - recall on a log axis (``_recall_axis``)."""
    plt = _pyplot()
    bands = [b for b in BANDS if any(r["band"] == b and r["k"] == k for r in rows)]
    cols = min(3, max(1, len(bands)))
    nrows = max(1, math.ceil(len(bands) / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(5 * cols, 4 * nrows), squeeze=False)
    engines = engine_order(rows)
    for ax, band in zip(axes.flat, bands):
        for i, engine in enumerate(engines):
            pts = [(r["recall"], r["qps"]) for r in rows if r["engine"] == engine and r["band"] == band
                   and r["k"] == k and np.isfinite(r["qps"]) and not r["run_error"]]
            if not pts:
                continue
            st = _style(i)
            ax.scatter([_miss(r) for r, _ in pts], [q for _, q in pts], s=12, alpha=0.35, color=st["color"],
                       marker=st["marker"])
            front = pareto(pts)
            ax.plot([_miss(r) for r, _ in front], [q for _, q in front], label=engine, **st, markersize=4)
        n = next((r["queries"] for r in rows if r["band"] == band), 0)
        ax.set_title(f"{band} ({n} queries)")
        _recall_axis(ax, k)
        ax.set_ylabel("QPS, 1 thread")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[len(bands):]:
        ax.axis("off")
    handles, labels = next(((a.get_legend_handles_labels()) for a in axes.flat if a.lines), ([], []))
    fig.legend(handles, labels, loc="lower center", ncol=min(6, max(1, len(labels))), fontsize=8)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def qps_vs_selectivity(rows: list[dict], selectivity: dict[str, float], path: Path, k: int, title: str) -> Path:
    """Best single-thread QPS per band at recall >= 0.9 (left) and >= 0.95 (right), by band selectivity."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), squeeze=False)
    for ax, target in zip(axes.flat, (0.9, 0.95)):
        for i, engine in enumerate(engine_order(rows)):
            xs, ys = [], []
            for band in BANDS:
                best = best_at(rows, engine, band, k, target)
                if best is not None and band in selectivity:
                    xs.append(selectivity[band])
                    ys.append(best["qps"])
            if xs:
                order = np.argsort(xs)
                ax.plot(np.array(xs)[order], np.array(ys)[order], label=engine, **_style(i))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("selectivity (median of the band's queries)")
        ax.set_ylabel(f"best QPS at recall@{k} >= {target}")
        ax.set_title(f"recall >= {target}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def cost_vs_n(points: list[dict], path: Path, title: str) -> Path | None:
    """``points``: {engine, n, latency_ms (cheapest setting with overall recall >= 0.9), build_s}.

    Drawn only from two sizes of N up (a report over several datasets): one N makes a plot of single
    points that says nothing about scaling. Returns None then, and removes an older plot at ``path``."""
    if len({p["n"] for p in points}) < 2:
        path.unlink(missing_ok=True)
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), squeeze=False)
    engines: list[str] = []
    for p in points:
        if p["engine"] not in engines:
            engines.append(p["engine"])
    for i, engine in enumerate(engines):
        mine = sorted((p for p in points if p["engine"] == engine), key=lambda p: p["n"])
        for ax, key in zip(axes.flat, ("latency_ms", "build_s")):
            # an engine without an index (the exact scan) has no build time worth a log axis
            xy = [(p["n"], p[key]) for p in mine
                  if p.get(key) is not None and np.isfinite(p[key]) and (key != "build_s" or p[key] > 0.01)]
            if xy:
                ax.plot(*zip(*xy), label=engine, **_style(i))
    for ax, label in zip(axes.flat, ("mean latency (ms, 1 thread) at overall recall@10 >= 0.9",
                                     "build time (s)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("N (base vectors)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _n_label(n: int) -> str:
    if n >= 1_000_000 and n % 100_000 == 0:
        return f"{n / 1e6:g}M"
    if n >= 1000 and n % 100 == 0:
        return f"{n / 1e3:g}k"
    return f"{n:,}"


def cost_vs_n_by_band(points: list[dict], path: Path, title: str, target: float = 0.9) -> Path:
    """One panel per band: mean single-thread latency against N (both log), per engine the cheapest setting
    reaching ``target`` in that band; ``default`` points (vecdb's default settings) as a dashed series, ringed
    where their recall is below ``target``. Engines missing ``target`` at some N are named in the panel title.

    ``points``: {band, n, series, engine, latency_ms (NaN: target never reached), recall, default}."""
    plt = _pyplot()
    bands = [b for b in BANDS if any(p["band"] == b for p in points)]
    cols = min(3, max(1, len(bands)))
    nrows = max(1, math.ceil(len(bands) / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(5 * cols, 4 * nrows), squeeze=False)
    series: list[str] = []
    engines: list[str] = []
    for p in points:
        if p["series"] not in series:
            series.append(p["series"])
        if p["engine"] not in engines:
            engines.append(p["engine"])
    handles: dict[str, object] = {}
    any_hollow = False  # some default point below the target
    for ax, band in zip(axes.flat, bands):
        missing = []
        for s in series:
            mine = sorted((p for p in points if p["band"] == band and p["series"] == s), key=lambda p: p["n"])
            if not mine:
                continue
            default = mine[0]["default"]
            st = _style(engines.index(mine[0]["engine"]))
            ok = [p for p in mine if np.isfinite(p["latency_ms"])]
            if not default and len(ok) < len(mine):
                gone = [_n_label(p["n"]) for p in mine if not np.isfinite(p["latency_ms"])]
                missing.append(s if not ok else f"{s} ({', '.join(gone)})")
            if not ok:
                continue
            if default:  # drawn over the engine's own series, which it often coincides with
                st = {**st, "marker": "x", "markersize": 8, "linestyle": "--", "zorder": 3}
            (line,) = ax.plot([p["n"] for p in ok], [p["latency_ms"] for p in ok], label=s, **st)
            handles.setdefault(s, line)
            low = [p for p in ok if default and (p.get("recall") is None or p["recall"] < target)]
            if low:  # a ring: the default setting's recall is below the target there
                any_hollow = True
                ax.plot([p["n"] for p in low], [p["latency_ms"] for p in low], linestyle="none", marker="o",
                        markersize=13, markerfacecolor="none", markeredgecolor=st["color"], zorder=3)
        head = f"{band}"
        if missing:
            head += f"\nrecall < {target}: " + "; ".join(missing)
        ax.set_title(head, fontsize=9)
        if not ax.lines:
            ax.text(0.5, 0.5, f"no engine reaches recall {target}", ha="center", va="center", transform=ax.transAxes)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ns = sorted({p["n"] for p in points})
        ax.set_xticks(ns, [_n_label(n) for n in ns])
        ax.set_xticks([], minor=True)
        ax.set_xlim(ns[0] / 1.4, ns[-1] * 1.4)  # the same N range in every panel
        ax.set_xlabel("N (base vectors)")
        ax.set_ylabel("mean latency ms, 1 thread")
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[len(bands):]:
        ax.axis("off")
    labels, lines = list(handles), list(handles.values())
    if any_hollow:
        from matplotlib.lines import Line2D

        lines.append(Line2D([], [], linestyle="none", marker="o", markersize=10, markerfacecolor="none",
                            markeredgecolor="black"))
        labels.append(f"ringed: default setting below recall {target}")
    if labels:
        fig.legend(lines, labels, loc="lower center", ncol=min(6, len(labels)), fontsize=8)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
