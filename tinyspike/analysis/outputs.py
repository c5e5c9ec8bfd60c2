"""Where every analysis puts its results: ``<out>/<NAME>.json`` and ``<out>/<NAME>.png``.

``NAME`` is exactly the analysis' name on the command line (``tinyspike analyze NAME``):
``grad-norms.json``, ``init-study.png``, ... Both files are written atomically (a temporary file
beside the target, flushed to disk and renamed over it, by ``tinyspike.atomic``), so a
reader, or a restarted analysis reading its own partial results, sees the old file or the new
one, never half of one.

JSON has no NaN or infinity: ``write_json`` stores every non-finite float as ``null`` (a grid
point not computed yet, a ratio whose denominator is 0) and refuses anything else that is not
JSON (``allow_nan=False`` is the last guard). NumPy scalars and arrays become plain numbers and
lists, tuples lists, paths strings.

Figures are Matplotlib ``Figure`` objects on the Agg canvas (``new_figure``): no pyplot state,
no change of Matplotlib's global backend, so a notebook's own plotting is left alone.
"""

from __future__ import annotations

import io
import json
import math
import textwrap
from pathlib import Path

import numpy as np

from tinyspike import atomic, checks


def output_paths(out_dir, name: str) -> tuple[Path, Path]:
    """``(<out_dir>/<name>.json, <out_dir>/<name>.png)``."""
    out_dir = Path(out_dir)
    return out_dir / f"{name}.json", out_dir / f"{name}.png"


def output_dir(where: str, out_dir) -> Path:
    """``out_dir`` checked (a path) and created with its parents."""
    folder = Path(checks.path(where, "out_dir", out_dir))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def json_safe(value):
    """``value`` with NaN/±inf as None, NumPy scalars/arrays as Python numbers/lists, tuples as
    lists, dict keys as strings and paths as strings."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path, data):
    """Write ``json_safe(data)`` to ``path`` atomically (indented, NaN as null); return what was written."""
    data = json_safe(data)
    atomic.write_text(Path(path), json.dumps(data, indent=1, allow_nan=False) + "\n")
    return data


def read_json(path, default):
    """The JSON in ``path``, or ``default`` when it is missing or unreadable (a restart starts afresh)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return default


def new_figure(width: float, height: float, dpi: int = 110):
    """A Matplotlib figure of ``width`` × ``height`` inches on the Agg canvas."""
    # Matplotlib only when a figure is drawn: importing it takes about 0.3 s
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(figure)
    return figure


#: Characters per title line: a 7.5-inch figure fits about this many at font size 9-10.
TITLE_WIDTH = 95


def wrap(title: str, width: int = TITLE_WIDTH) -> str:
    """``title`` broken into lines of at most ``width`` characters (its own line breaks kept), so
    that a long title (a model with options, a checkpoint path) is not cut off at the figure's edge."""
    return "\n".join(textwrap.fill(line, width, break_on_hyphens=False) or line for line in title.split("\n"))


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``"1 epoch"``, ``"3 epochs"``."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"


def write_figure(path, figure) -> Path:
    """Render ``figure`` as PNG into ``path`` atomically."""
    png = io.BytesIO()
    figure.savefig(png, format="png")
    atomic.write_bytes(Path(path), png.getvalue())
    return Path(path)


def write_outputs(out_dir, name: str, figure, data: dict) -> dict:
    """Write ``<out_dir>/<name>.png`` and ``<out_dir>/<name>.json``; return the JSON dict."""
    json_path, png_path = output_paths(out_dir, name)
    write_figure(png_path, figure)
    return write_json(json_path, data)
