"""model_dir/curves.png: loss, top-1 (train and the evaluations) and learning rate against the step.

Drawn with matplotlib, an optional dependency (setup.py's "plots" extra): without it there is no picture, and
RunLog says so once. Only matplotlib's object API is used (Figure and the Agg canvas, no pyplot): no global
figure state, no display needed.
"""

import io


class MatplotlibMissing(ImportError):
    """matplotlib cannot be imported: curves.png is not drawn."""


def draw(train, evaluations):
    """PNG bytes of three panels side by side. train: metrics.csv as {column: [values]}; evaluations: the
    metrics.jsonl records (each split a curve of its own)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=import-outside-toplevel
        from matplotlib.figure import Figure  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise MatplotlibMissing('matplotlib is not installed (pip install -e ".[plots]")') from None
    figure = Figure(figsize=(12, 3.6), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    loss, top_1, learning_rate = figure.subplots(1, 3)
    loss.plot(train["step"], train["loss"], label="train")
    top_1.plot(train["step"], train["top_1"], label="train")
    splits = sorted({r["split"] for r in evaluations if r.get("ema", True)})
    for split in splits:
        records = sorted(
            (r for r in evaluations if r["split"] == split and r.get("ema", True)), key=lambda r: r["step"]
        )
        steps = [r["step"] for r in records]
        loss.plot(steps, [r["loss"] for r in records], marker="o", label=f"{split} (EMA)")
        top_1.plot(steps, [r["top_1"] for r in records], marker="o", label=f"{split} (EMA)")
    learning_rate.plot(train["step"], train["learning_rate"])
    for axes, title in ((loss, "loss"), (top_1, "top-1"), (learning_rate, "learning rate")):
        axes.set_title(title)
        axes.set_xlabel("step")
        axes.grid(alpha=0.3)
    losses = [v for v in train["loss"] + [r["loss"] for r in evaluations] if v > 0]
    if losses and max(losses) > 10 * min(losses):  # early minival losses can be in the hundreds (configs/demo.py)
        loss.set_yscale("log")
    loss.legend()
    top_1.legend()
    top_1.set_ylim(0, 1)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
