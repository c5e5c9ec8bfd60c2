"""Every figure of ``tinyspike analyze`` for one checkpoint (gradient norms, SSIM, firing, raster,
loss landscape, init study), each as NAME.png + NAME.json in --out.

    python examples/analyses.py --checkpoint runs/cifar10/run/best.npz --out figures/
    python examples/analyses.py --small                # seconds: a tiny digits model, small options

The same as ``tinyspike analyze NAME CHECKPOINT --out DIR`` for each NAME, through the Python API.
"""

import json

from _common import SMALL, parse

from tinyspike.analysis import commands
from tinyspike.analysis.source import AnalysisSource
from tinyspike.train import train

args = parse(__doc__.splitlines()[0], checkpoint={"help": "a best.npz/last.npz of tinyspike train"})
checkpoint = args.checkpoint
# small mode: one small batch and a coarse grid, wherever an analysis takes such an option
options = ({"batches": 1, "batch_size": 16, "grid": 3, "progress": False, "gammas1": [0.0, 1.0], "gammas2": [1.0],
            "train_batches": 2, "eval_batches": 1} if args.small else {})
if args.small:
    checkpoint = train(dict(SMALL, dataset="digits", model="ms_resnet8"), out=args.out / "run").run_dir / "best.npz"
elif checkpoint is None:
    raise SystemExit("analyses.py: give --checkpoint (or --small)")
source = AnalysisSource.from_checkpoint(checkpoint)
done = {}
for name, entry in commands.ANALYSES.items():
    if entry.study:
        continue  # depth-study and alternatives train their own runs: see depth_study.py
    run = commands.load_run_function(name)
    names, _ = commands.option_names(run)
    run(source, args.out, **{k: v for k, v in options.items() if k in names})
    done[name] = "written"
    print(f"{name}: {args.out / name}.png and .json")
(args.out / "analyses.json").write_text(json.dumps({"source": source.describe(), "analyses": done}, indent=2))
