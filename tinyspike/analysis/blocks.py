"""What the block-wise analyses share: walking a model's residual blocks, measuring without
changing the model, and the data and comparison models every analysis of one source uses.

- ``residual_blocks``: every ``ResidualBlock`` in forward order; ``stage_changes``: those that
  change the tensor's shape (stride ≠ 1 or a new width), where a per-block quantity also
  measures the change of size (the plots mark them).
- ``model_state_kept``: run the model with batch statistics (dropout off) or running ones, and
  put back every module's mode, the BN running statistics and the parameters' ``.grad``:
  measuring a model changes nothing in it. ``measuring`` adds ``no_grad``.
- ``take_batches``: the first test (or train) batches of a source, as a list, so that every
  model compared sees the same samples; ``compare_source``: a freshly initialised model of
  another name for the same dataset, T, seed and model options.
- the checks of the options these share (``check_batches``, ``check_model_name``, ``check_model_names``).
"""

from __future__ import annotations

from tinyspike import checks
from tinyspike.autograd import no_grad
from tinyspike.models.blocks import ResidualBlock
from tinyspike.models.registry import check_model_name as known
from tinyspike.nn import Dropout


def residual_blocks(model, where: str) -> list[tuple[str, object]]:
    """``(name, block)`` of every ``ResidualBlock`` of ``model`` in registration (= forward) order.

    ValueError naming ``model`` when there is none: a block-wise analysis has nothing to look at.
    """
    if not hasattr(model, "named_modules"):
        raise TypeError(f"{where}: model must be a tinyspike Module, got {checks.kind_of(model)}")
    blocks = [(name, m) for name, m in model.named_modules() if isinstance(m, ResidualBlock)]
    if not blocks:
        raise ValueError(f"{where}: model has no residual blocks (ResidualBlock modules); "
                         f"got a {type(model).__name__}")
    return blocks


def stage_changes(blocks) -> list[int]:
    """Indices of the blocks that change the tensor's shape (stride ≠ 1 or a new width)."""
    return [i for i, (_, b) in enumerate(blocks) if b.stride != 1 or b.in_channels != b.out_channels]


class model_state_kept:
    """Context manager: run the model in training mode with dropout off (batch statistics, no random
    mask) or in evaluation mode, and restore modes, BN running statistics and parameter grads after."""

    def __init__(self, model, batch_statistics: bool):
        self.model, self.batch_statistics = model, batch_statistics

    def __enter__(self):
        model = self.model
        self.modes = [(m, m.training) for m in model.modules()]
        self.buffers = [(b, b.copy()) for _, b in model.named_buffers()]
        self.grads = [(p, p.grad) for p in model.parameters()]
        for p in model.parameters():
            p.grad = None
        model.train(self.batch_statistics)
        if self.batch_statistics:
            for m in model.modules():
                if isinstance(m, Dropout):
                    m.eval()
        return model

    def __exit__(self, *exc):
        for module, mode in self.modes:
            object.__setattr__(module, "training", mode)
        for buffer, saved in self.buffers:
            buffer[...] = saved
        for p, grad in self.grads:
            p.grad = grad
        return False


class measuring:
    """``model_state_kept`` without gradients: forward passes that only observe."""

    def __init__(self, model, batch_statistics: bool):
        self.kept, self.no_grad = model_state_kept(model, batch_statistics), no_grad()

    def __enter__(self):
        self.no_grad.__enter__()
        return self.kept.__enter__()

    def __exit__(self, *exc):
        self.kept.__exit__(*exc)
        self.no_grad.__exit__(*exc)
        return False


def check_batches(where: str, batch_size, batches) -> tuple[int, int]:
    """``(batch_size, batches)``, both ints >= 1."""
    return (checks.integer(where, "batch_size", batch_size, low=1),
            checks.integer(where, "batches", batches, low=1))


def check_model_name(where: str, name: str, value) -> str:
    """A model name of the zoo (``tinyspike.models.registry``), checked before anything is computed."""
    if not isinstance(value, str):
        raise TypeError(f"{where}: {name} must be a model name (str), got {checks.kind_of(value)} "
                        f"{checks.show(value)}")
    try:
        known(value)
    except ValueError as err:
        raise ValueError(f"{where}: {name}: {err}") from None
    return value


def check_model_names(where: str, name: str, values) -> list[str]:
    """None (no models) or a list/tuple of model names of the zoo."""
    if values is None:
        return []
    if isinstance(values, str) or not isinstance(values, (list, tuple)):
        raise TypeError(f"{where}: {name} must be a list of model names or None, got {checks.kind_of(values)} "
                        f"{checks.show(values)}")
    return [check_model_name(where, f"{name}[{i}]", v) for i, v in enumerate(values)]


def compare_source(source, model_name: str):
    """A freshly initialised ``model_name`` for the source's dataset, with the source's T, seed and
    model options (e.g. ``widths``), built as ``AnalysisSource.from_model`` builds any model."""
    config = getattr(source, "config", None)
    model_opts = dict(getattr(config, "model_options", None) or {})
    data_dir = getattr(config, "data_dir", None)
    data_opts = dict(getattr(config, "dataset_options", None) or {})
    return type(source).from_model(model_name, source.dataset_name, data_dir=data_dir, model_opts=model_opts,
                                   data_opts=data_opts, seed=getattr(source, "seed", 0),
                                   time_steps=source.time_steps)


def take_batches(source, batch_size: int, batches: int, split: str = "test") -> list:
    """The first ``batches`` batches of ``split`` as a list (every model compared sees the same ones)."""
    taken = list(source.batches(split, batch_size=batch_size, limit=batches))
    if not taken:
        raise ValueError(f"the {split} split of {source.dataset_name!r} yielded no batches")
    return taken


def describe_source(source) -> dict:
    """The source's JSON-safe facts (``AnalysisSource.describe``), or just its model name."""
    return source.describe() if hasattr(source, "describe") else {"model": source.model_name}


def legend_label(source) -> str:
    """How a figure's legend names the source's model: with its options and whether it is trained
    (``AnalysisSource.legend_label``), or just its model name."""
    return source.legend_label() if hasattr(source, "legend_label") else source.model_name
