"""The depth study of Table II: PlainNet, vanilla, W/O-LIF and MS-ResNet at depths 8 to 56.

    python examples/depth_study.py --data-dir ~/data/cifar-10-batches-bin --out studies/table2
    python examples/depth_study.py --small              # seconds: depths 8 and 14, two families, digits

Each family x depth is one run folder under --out; stop it any time and start it again with the
same command: finished runs are skipped, a stopped one is resumed exactly. The table
(depth-study.json) and the figure (depth-study.png, with the paper's values dashed on CIFAR-10) are
rebuilt from the run folders after every run.
"""

from _common import SMALL, parse

from tinyspike.analysis.depth_study import run_depth_study

args = parse(__doc__.splitlines()[0], data_dir={"help": "the extracted cifar-10-batches-bin folder"})
if args.small:
    small = dict(SMALL)
    summary = run_depth_study(args.out, dataset="digits", depths=[8, 14], families=["plain", "ms"],
                              epochs=small.pop("epochs"), recipe="none", **small)
else:
    summary = run_depth_study(args.out, dataset="cifar10", data_dir=args.data_dir, depths=[8, 14, 20, 32, 44, 56],
                              families=["plain", "vanilla", "wolif", "ms"], epochs=100, recipe="depth-study",
                              progress=True, log=print)
for family, row in summary["final_test_acc"].items():
    print(family, {depth: None if acc is None else round(100 * acc, 2) for depth, acc in row.items()})
print(f"table {args.out / 'depth-study.json'}, figure {args.out / 'depth-study.png'}")
