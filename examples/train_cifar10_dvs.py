"""Train MS-ResNet-20 (DVS) on CIFAR10-DVS: T = 10 event frames, tinyspike's ``dvs`` recipe.

    python examples/train_cifar10_dvs.py --data-dir ~/data/cifar10-dvs --out runs/dvs
    python examples/train_cifar10_dvs.py --small        # seconds: the built-in digits through the DVS emulator

Event data bring their own T (frames per sample): the input is [T, B, 2, H, W], ON/OFF channels.
``size=64`` bins the 128x128 frames to 64x64 (1.5 GB of frames instead of 5.9 GB).
"""

from _common import SMALL, parse

from tinyspike.train import resolve_config, train

args = parse(__doc__.splitlines()[0], data_dir={"help": "the folder of the 10 per-class zips"})
settings = {"dataset": "cifar10-dvs", "data_dir": args.data_dir, "recipe": "dvs", "dataset_options": {"size": 64},
            "model_options": {"stem_stride": 1}}
if args.small:  # a 2-channel MS-ResNet-8 on 16x16 emulated events, 2 frames
    settings = dict(SMALL, dataset="digits-dvs", model="ms_resnet8", dataset_options={"size": 16},
                    model_options={"widths": [4, 8, 8], "in_channels": 2})
config = resolve_config(settings)
result = train(config, out=args.out / "run", log=print)
print(f"final test accuracy {100 * result.final_test_acc:.2f}%; run folder {result.run_dir}")
