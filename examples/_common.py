"""What every example shares: ``--small`` (or ``TINYSPIKE_EXAMPLES_SMALL=1``) and ``--out``."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

#: the tiny settings of --small: 8x8 digits, widths 4/8/8, T = 2, one epoch (seconds on a CPU)
SMALL = {"model_options": {"widths": [4, 8, 8]}, "dataset_options": {"size": 8}, "T": 2, "epochs": 1,
         "batch_size": 64}


def parse(description: str, **extra) -> argparse.Namespace:
    """``--small``, ``--out`` (default: a new temporary folder) and the example's own ``extra`` flags."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--small", action="store_true", default=os.environ.get("TINYSPIKE_EXAMPLES_SMALL") == "1",
                        help="tiny settings on built-in data: runs in seconds (also TINYSPIKE_EXAMPLES_SMALL=1)")
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: a new temporary folder)")
    for flag, kwargs in extra.items():
        parser.add_argument(f"--{flag.replace('_', '-')}", **kwargs)
    args = parser.parse_args()
    if args.out is None:
        args.out = Path(tempfile.mkdtemp(prefix="tinyspike-example-"))
    args.out.mkdir(parents=True, exist_ok=True)
    return args
