"""Operations and energy of a trained spiking network by the paper's method (REFERENCE §8, Table V).

    python examples/energy.py --checkpoint runs/cifar10/run/best.npz --out energy/
    python examples/energy.py --small                  # seconds: trains a tiny digits model first

E(ANN) = FLOPs x 4.6 pJ, E(SNN) = SyOPs x 0.9 pJ, SyOPs = MACs x T x (input firing rate); the stem and
the shortcut projections see no spikes and are not counted.
"""

import json

from _common import SMALL, parse

from tinyspike.analysis.energy import measure_energy
from tinyspike.analysis.source import AnalysisSource
from tinyspike.train import train

args = parse(__doc__.splitlines()[0], checkpoint={"help": "a best.npz/last.npz of tinyspike train"},
             batches={"type": int, "default": 10, "help": "test batches to average the firing rates over"})
checkpoint = args.checkpoint
if args.small:
    checkpoint = train(dict(SMALL, dataset="digits", model="ms_resnet8"), out=args.out / "run").run_dir / "best.npz"
elif checkpoint is None:
    raise SystemExit("energy.py: give --checkpoint (or --small)")
source = AnalysisSource.from_checkpoint(checkpoint)
report = measure_energy(source.model, source.batches("test", batch_size=50, limit=args.batches), source.time_steps)
print(f"{source.title('energy')}\n{report.table()}")
numbers = {"source": source.describe(), **report.to_dict()}
(args.out / "energy.json").write_text(json.dumps(numbers, indent=2))
print(f"wrote {args.out / 'energy.json'}")
