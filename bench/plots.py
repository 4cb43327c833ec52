"""The key plots beside ``bench/README.md``, drawn from the latest results in ``bench/results/``:

- ``frames.png``    time and forward memory against frame count, VideoMamba against attention of the same width and
                    depth (``frames.json``, written by ``python -m bench.frames``);
- ``learning.png``  VTC loss and held-out T2V R@1 against step, one line per run (every results file of
                    ``python -m bench.learning`` whose runs carry ``curve`` / ``eval_curve``).

    pip install 'vtr[bench]'        # matplotlib
    python -m bench.plots [--results bench/results] [--out bench/plots]

A plot whose results are absent is skipped with a message; rerun after a bench to refresh the PNGs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
LABELS = {"videomamba": "VideoMamba", "vit_sdpa": "ViT, SDPA attention", "vit_plain": "ViT, materialised attention"}


def load_results(folder: Path) -> dict[str, dict]:
    """file stem -> parsed JSON, for every ``*.json`` in ``folder``."""
    out = {}
    for path in sorted(Path(folder).glob("*.json")):
        try:
            out[path.stem] = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            print(f"skipping {path}: not JSON ({e})")
    return out


def frame_series(report: dict) -> dict[str, dict[str, list]]:
    """kind -> {"frames", "s_per_clip", "fwd_mib", "peak_mib"}, sorted by frame count; failed rows left out."""
    series: dict[str, dict[str, list]] = {}
    for r in sorted((r for r in report["rows"] if "error" not in r), key=lambda r: r["frames"]):
        s = series.setdefault(r["kind"], {"frames": [], "s_per_clip": [], "fwd_mib": [], "peak_mib": []})
        s["frames"].append(r["frames"])
        s["s_per_clip"].append(r["s_per_clip"])
        s["fwd_mib"].append(r["act_mib"])
        s["peak_mib"].append(r["peak_rss_mib"])
    return series


def learning_series(reports: dict[str, dict]) -> list[dict]:
    """One entry per run that has a loss curve: label, VTC by step, and held-out R@1 rows by step (may be empty)."""
    runs = []
    for stem, report in reports.items():
        for row in report.get("rows", []) + report.get("masked", []) + report.get("bag_of_frames", []):
            run = row.get("run") if isinstance(row, dict) else None
            if not run or not run.get("curve"):
                continue
            runs.append({"label": f"{row['name']}, {row['variant']}, seed {row['seed']}", "source": stem,
                         "vtc": [(c["step"], c["vtc"]) for c in run["curve"] if "vtc" in c],
                         "eval": run.get("eval_curve") or [], "chance_r1": row.get("chance_r1")})
    return runs


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("bench.plots needs matplotlib: pip install 'vtr[bench]' (or pip install matplotlib)") from None
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _load_span(report: dict) -> str:
    """The 1-minute load average over the run: its range across rows, else at start and end."""
    loads = [r[k] for r in report["rows"] for k in ("loadavg_before", "loadavg") if k in r]
    if loads:
        return f"load {min(loads):.1f}–{max(loads):.1f}"
    start, end = report.get("loadavg_at_start"), report.get("loadavg_at_end")
    return f"load {start[0]:.1f} → {end[0]:.1f}" if start and end else ""


def plot_frames(report: dict, path: Path) -> Path:
    plt = _pyplot()
    series = frame_series(report)
    args = report.get("args", {})
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    for kind, s in series.items():
        style = dict(marker="o", label=LABELS.get(kind, kind), linestyle="-" if kind == "videomamba" else "--")
        ax_t.plot(s["frames"], s["s_per_clip"], **style)
        ax_m.plot(s["frames"], s["fwd_mib"], **style)
    for ax, ylabel in ((ax_t, "seconds per clip (best of repeats)"),
                       (ax_m, "forward memory, MiB (peak RSS − RSS before)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("frames (224², 196 patches each)")
        ax.set_ylabel(ylabel)
        ticks = sorted({t for s in series.values() for t in s["frames"]})
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    machine = report.get("machine", {})
    fig.suptitle(f"VideoMamba-{args.get('size', '?')} vs attention of the same width and depth, batch 1, "
                 f"{args.get('dtype', 'fp32')} — {machine.get('cpus', '?')} CPUs (shared), "
                 f"{_load_span(report)}, {report.get('date_utc', '')[:10]}", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_learning(runs: list[dict], path: Path, title: str = "") -> Path:
    plt = _pyplot()
    fig, (ax_l, ax_r) = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    chance = None
    for i, run in enumerate(runs):
        colour = colours[i % len(colours)]
        if run["vtc"]:
            ax_l.plot(*zip(*run["vtc"]), color=colour, label=run["label"])
        for key, style in (("itc_t2v_r1", "-"), ("itm_t2v_r1", ":")):
            points = [(e["step"], e[key]) for e in run["eval"] if key in e]
            if points:
                ax_r.plot(*zip(*points), style, marker="o", color=colour,
                          label=f"{run['label']} ({key.split('_')[0].upper()})")
        chance = chance or run.get("chance_r1")
    ax_l.set_xlabel("step")
    ax_l.set_ylabel("VTC loss (training batch)")
    ax_l.legend(fontsize=7)
    ax_r.set_xlabel("step")
    ax_r.set_ylabel("held-out T2V R@1, %")
    if chance:
        ax_r.axhline(chance, color="grey", linewidth=0.8, linestyle="--", label=f"chance ({chance:.1f}%)")
    if any(run["eval"] for run in runs):
        ax_r.legend(fontsize=7)
    else:
        ax_r.text(0.5, 0.5, "no held-out curve in these results\n(python -m bench.learning --eval-every 50)",
                  ha="center", va="center", transform=ax_r.transAxes, fontsize=9)
    for ax in (ax_l, ax_r):
        ax.grid(True, alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def learning_title(reports: dict[str, dict]) -> str:
    """Config, machine and load of the learning results drawn."""
    parts = []
    for stem, r in reports.items():
        start, end = r.get("machine_start", {}), r.get("machine_end", {})
        if "rows" in r and start:
            parts.append(f"{stem}: {Path(r.get('config', '?')).name}, {start.get('cpus', '?')} CPUs (shared), "
                         f"load {start.get('load_avg_1m', '?')} → {end.get('load_avg_1m', '?')}"
                         + (f", {r['date_utc'][:10]}" if r.get("date_utc") else ""))
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default=str(HERE / "results"), help="folder of the benches' JSON results")
    p.add_argument("--out", default=str(HERE / "plots"), help="folder for the PNGs")
    args = p.parse_args(argv)
    reports = load_results(Path(args.results))
    out = Path(args.out)
    written = []
    if "frames" in reports:
        written.append(plot_frames(reports["frames"], out / "frames.png"))
    else:
        print(f"no frames.json in {args.results}: run python -m bench.frames (frames.png not redrawn)")
    learning = {k: v for k, v in reports.items() if "rows" in v and "corpora" in v}
    runs = learning_series(learning)
    if runs:
        written.append(plot_learning(runs, out / "learning.png", learning_title(learning)))
    else:
        print(f"no learning curves in {args.results}: run python -m bench.learning (learning.png not redrawn)")
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
