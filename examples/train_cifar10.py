"""Train MS-ResNet-20 on CIFAR-10 with the paper's Table II recipe, through the Python API.

    python examples/train_cifar10.py --data-dir ~/data/cifar-10-batches-bin --out runs/cifar10
    python examples/train_cifar10.py --small            # seconds: the same recipe on 8x8 digits, 1 epoch

Table II (REFERENCE §7): SGD lr 0.1, momentum 0.9, batch 100, no weight decay, 100 epochs, lr x0.2
at epochs 40/60/80, RandomCrop(32, 4), T = 6. ``resolve_config`` fills all of it in from the recipe's
name; anything given explicitly overrides it.
"""

from _common import SMALL, parse

from tinyspike.train import resolve_config, train

args = parse(__doc__.splitlines()[0], data_dir={"help": "the extracted cifar-10-batches-bin folder"},
             model={"default": "ms_resnet20"})
settings = {"dataset": "cifar10", "data_dir": args.data_dir, "model": args.model, "recipe": "depth-study"}
if args.small:
    settings.update(SMALL, dataset="digits", data_dir=None, model="ms_resnet8")
config = resolve_config(settings)  # dataset defaults < recipe < explicit settings
print(f"{config.model} on {config.dataset}: {config.optimizer} lr {config.lr}, batch {config.batch_size}, "
      f"{config.epochs} epochs, {config.schedule} {config.milestones} x{config.gamma}, augment {config.augment}, T={config.T}")
result = train(config, out=args.out / "run", log=print)
print(f"final test accuracy {100 * result.final_test_acc:.2f}% (best {100 * result.best_test_acc:.2f}%); "
      f"run folder {result.run_dir}")
