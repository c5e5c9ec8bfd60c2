"""The model zoo by name: ``build(name, num_classes=10, time_steps=6, **options)`` and ``list_models()``.

CIFAR families, any depth 6n + 2 (n ≥ 1: 8, 14, 20, 32, 44, 56, 110, 482, …), widths 16/32/64:

    ms_resnet<depth>        MS-ResNet (SR-A), the paper's network
    vanilla_resnet<depth>   vanilla spiking ResNet (LIF after the add, spikes between blocks)
    wolif_resnet<depth>     vanilla without the LIF after the add
    srb_resnet<depth>       SR-B (full pre-activation)
    src_resnet<depth>       SR-C (activation before the add)
    plainnet<depth>         PlainNet (LIF(BN(Conv)) layers, no shortcuts)

Fixed models:

    ms_resnet18_imagenet, ms_resnet34_imagenet    Conv7×7/2 stem, stages 64-512, all stride 2
    ms_resnet104_imagenet                         three-conv stem, AvgPool shortcuts, dropout 0.2
    ms_resnet20_dvs                               2 input channels, stem and first stage stride 2

``options`` go to ``SpikingResNet`` (e.g. ``widths=(8, 16, 32)``, ``dropout=0.1``,
``zero_init_residual=False``, ``seed=0``, ``bn_alpha``, ``v_th``, ``decay``, ``surrogate``,
``shortcut``); the DVS model also takes ``stem_stride`` and ``first_stage_stride``. Every option
is checked when the model is built, before any layer is made: a bad value raises a TypeError or
ValueError naming the option, never an error from the first forward.

``zero_init_residual="auto"`` (the default) zeroes the γ of each block's second BN only where
that BN is added linearly to the shortcut and no LIF follows the sum: ``ms_resnet*`` (and the
ImageNet and DVS models) and ``wolif_resnet*``. ``vanilla_resnet*``, ``srb_resnet*``,
``src_resnet*`` and ``plainnet*`` keep the tdBN init γ₀ = α·V_th there: a LIF after a zero-γ BN
(or after a sum that is then exactly the shortcut's spikes) passes no gradient at all
(REFERENCE.md §2; ``tinyspike.models.blocks`` shows why).
"""

from __future__ import annotations

import inspect
import re

from tinyspike import checks
from tinyspike.models.resnet import SpikingResNet

CIFAR_FAMILIES = {
    "ms_resnet": "ms",
    "vanilla_resnet": "vanilla",
    "wolif_resnet": "wolif",
    "srb_resnet": "srb",
    "src_resnet": "src",
    "plainnet": "plain",
}
CIFAR_WIDTHS = (16, 32, 64)
IMAGENET_WIDTHS = (64, 128, 256, 512)
_PATTERN = re.compile(r"^(" + "|".join(CIFAR_FAMILIES) + r")(\d+)$")


def _imagenet(stage_blocks, **defaults):
    def make(**options):
        settings = dict(block="ms", stage_blocks=stage_blocks, widths=IMAGENET_WIDTHS, stage_strides=(2, 2, 2, 2))
        settings.update(defaults)
        settings.update(options)
        return SpikingResNet(**settings)

    return make


def _dvs(stem_stride=2, first_stage_stride=2, **options):
    # checked here: inside SpikingResNet it would only be "stage_strides[0]"
    first_stage_stride = checks.integer("build('ms_resnet20_dvs')", "first_stage_stride", first_stage_stride, low=1)
    settings = dict(block="ms", stage_blocks=(3, 3, 3), widths=CIFAR_WIDTHS, stage_strides=(first_stage_stride, 2, 2),
                    stem_stride=stem_stride, in_channels=2)
    settings.update(options)
    return SpikingResNet(**settings)


def _cifar(block, n):
    def make(**options):
        settings = dict(block=block, stage_blocks=(n, n, n), widths=CIFAR_WIDTHS)
        settings.update(options)
        return SpikingResNet(**settings)

    return make


FIXED = {
    "ms_resnet18_imagenet": _imagenet((2, 2, 2, 2), stem="imagenet"),
    "ms_resnet34_imagenet": _imagenet((3, 4, 6, 3), stem="imagenet"),
    "ms_resnet104_imagenet": _imagenet((3, 8, 32, 8), stem="imagenet_deep", shortcut="avgpool", dropout=0.2),
    "ms_resnet20_dvs": _dvs,
}


def list_models() -> list[str]:
    """Every model name; ``<depth>`` stands for any CIFAR depth 6n + 2 (8, 14, 20, …, 110, 482)."""
    return [f"{family}<depth>" for family in CIFAR_FAMILIES] + list(FIXED)


def cifar_depth_to_blocks(depth: int) -> int:
    """n blocks per stage for depth 6n + 2 (ValueError listing valid depths otherwise)."""
    depth = checks.integer("cifar_depth_to_blocks", "depth", depth)
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(
            f"CIFAR depth must be 6n + 2 with n >= 1 (8, 14, 20, 26, 32, 38, 44, 56, 110, 482, ...), got {depth}"
        )
    return (depth - 2) // 6


def _maker_for(name: str):
    """The builder function behind a model name (ValueError naming the valid names otherwise)."""
    key = name.lower()
    if key in FIXED:
        return FIXED[key]
    match = _PATTERN.match(key)
    if match is None:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(list_models())} (<depth> = 6n + 2)")
    family, depth = match.group(1), int(match.group(2))
    try:
        n = cifar_depth_to_blocks(depth)
    except ValueError as err:
        raise ValueError(f"model {name!r}: {err}") from None
    return _cifar(CIFAR_FAMILIES[family], n)


def check_model_name(name: str) -> None:
    """Raise ValueError (naming the valid names) unless ``build`` knows ``name``; builds nothing."""
    if not isinstance(name, str):
        raise TypeError(f"check_model_name: name must be a str, got {checks.kind_of(name)} {checks.show(name)}")
    _maker_for(name)


def build(name: str, num_classes: int | None = None, time_steps: int = 6, **options) -> SpikingResNet:
    """Build a model by name (see the module docstring and ``list_models()``).

    ``num_classes=None`` means the dataset's: 1000 for the ``*_imagenet`` models, 10 otherwise.
    ``time_steps`` is T for static image input (event frames bring their own T).
    """
    if not isinstance(name, str):
        raise TypeError(f"build: name must be a str, got {checks.kind_of(name)} {checks.show(name)}")
    key = name.lower()
    if num_classes is None:
        num_classes = 1000 if key.endswith("_imagenet") else 10
    num_classes = checks.integer(f"build({key!r})", "num_classes", num_classes, low=1)
    maker = _maker_for(name)
    _check_options(key, options)
    model = maker(num_classes=num_classes, time_steps=time_steps, **options)
    model.name = key
    return model


def _check_options(key, options):
    allowed = set(inspect.signature(SpikingResNet.__init__).parameters) - {"self", "num_classes", "time_steps", "block", "stage_blocks"}
    if key == "ms_resnet20_dvs":
        allowed |= {"first_stage_stride"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise TypeError(f"build({key!r}): unknown option(s) {unknown}; allowed: {sorted(allowed)}")
