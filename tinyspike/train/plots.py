"""Loss and accuracy curves of a run as a PNG, drawn with Matplotlib's Agg canvas.

The object-oriented API (``Figure`` + ``FigureCanvasAgg``) needs no display and does not change
Matplotlib's global backend, so calling it from a notebook leaves the notebook's plotting alone.
"""

from __future__ import annotations

from pathlib import Path

from tinyspike import atomic


def plot_metrics(records: list, path, title: str = "") -> Path:
    """Draw train/test loss, train/test accuracy and mean firing rate per epoch into ``path``."""
    # Matplotlib only when a figure is drawn: importing it takes about 0.3 s
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    epochs = [r["epoch"] for r in records]

    def series(key):
        return [r.get(key) if r.get(key) is not None else float("nan") for r in records]

    fig = Figure(figsize=(12, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax_loss, ax_acc, ax_rate = fig.subplots(1, 3)
    ax_loss.plot(epochs, series("train_loss"), "o-", label="train")
    ax_loss.plot(epochs, series("test_loss"), "s-", label="test")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.plot(epochs, [100 * v for v in series("train_acc")], "o-", label="train")
    ax_acc.plot(epochs, [100 * v for v in series("test_acc")], "s-", label="test")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    ax_rate.plot(epochs, series("firing_rate"), "o-", color="tab:purple")
    ax_rate.set(xlabel="epoch", ylabel="spikes / (neuron x step)", title="mean firing rate (test)")
    for ax in (ax_loss, ax_acc):
        ax.legend()
    for ax in (ax_loss, ax_acc, ax_rate):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return atomic.replace_atomically(path, lambda handle: fig.savefig(handle, format="png"))
