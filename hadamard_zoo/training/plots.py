"""``learning_curve.png`` of a run folder, from its ``history.csv``."""

from __future__ import annotations

import sys

from hadamard_zoo.training.run_dir import RunDir, read_history


def plot_history(run: RunDir, metric_keys=("accuracy",), title=""):
    """learning_curve.png from history.csv: loss, the metric(s) and the learning rate per epoch."""
    history = read_history(run.csv)
    if not history or "epoch" not in history:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no learning_curve.png (pip install matplotlib).", file=sys.stderr)
        return None
    epochs = [e + 1 for e in history["epoch"]]
    panels = [("loss", ["loss", "val_loss"])]
    for m in metric_keys:
        keys = [k for k in (m, f"val_{m}") if k in history]
        if keys:
            panels.append((m, keys))
    if "learning_rate" in history:
        panels.append(("learning rate", ["learning_rate"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (name, keys) in zip(axes[0], panels):
        for k in keys:
            if k in history:
                ax.plot(epochs, history[k], marker="o", markersize=3, label=k)
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        if len(keys) > 1:
            ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(run.png, dpi=100)
    plt.close(fig)
    return run.png
