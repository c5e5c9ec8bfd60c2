"""Loss and accuracy over batches: the running totals of the training loop, and the evaluation
loop that ``Trainer.evaluate`` and ``tinyspike eval`` share.

The mean loss is weighted by batch size (``sum_b loss_b * n_b / sum_b n_b``), so a smaller last
batch counts for its samples only, and equals the loss over the whole set in one batch.
"""

from __future__ import annotations

from typing import Callable

from tinyspike import backend
from tinyspike.autograd import no_grad


class LossAccuracy:
    """Running totals of a pass over data: summed loss, correct predictions, samples seen."""

    def __init__(self):
        self.loss_sum = 0.0
        self.correct = 0
        self.seen = 0

    def add(self, loss: float, logits, labels) -> None:
        """Count one batch: ``loss`` is its mean loss (a float), ``logits`` a ``[B, K]`` Tensor."""
        n = int(labels.shape[0])
        self.loss_sum += loss * n
        self.correct += int((logits.data.argmax(axis=1) == labels).sum().item())  # .item(): explicit sync
        self.seen += n

    @property
    def loss(self) -> float:
        """Mean loss per sample (0.0 before any batch)."""
        return self.loss_sum / max(self.seen, 1)

    @property
    def accuracy(self) -> float:
        """Fraction of samples predicted right (0.0 before any batch)."""
        return self.correct / max(self.seen, 1)

    def as_dict(self) -> dict:
        return {"loss": self.loss, "acc": self.accuracy, "images": self.seen}


def forward(model, x, time_steps: int | None):
    """``model(x)``; a static batch ``[B, C, H, W]`` is repeated over ``time_steps`` when given
    (event batches ``[T, B, C, H, W]`` carry their own T). The loader's float32 batch is cast to
    the default dtype first (float64 after ``backend.set_default_dtype``: exact comparisons)."""
    dtype = backend.default_dtype()
    if getattr(x, "dtype", dtype) != dtype and x.dtype.kind == "f":
        x = x.astype(dtype)
    if x.ndim == 4 and time_steps is not None:
        return model(x, time_steps=time_steps)
    return model(x)


def evaluate(
    model,
    loader,
    loss_fn: Callable,
    *,
    time_steps: int | None = None,
    check_batch: Callable | None = None,
    max_batches: int | None = None,
) -> LossAccuracy:
    """Loss and accuracy of ``model`` on ``loader`` in evaluation mode, without gradients.

    ``loss_fn(logits, y)`` gives a 0-d Tensor; ``check_batch(x, index)``, if given, is called on
    each input batch before the forward (it raises to refuse one); ``max_batches`` stops early.
    The model's training mode is restored afterwards, also when an exception escapes.
    """
    was_training = model.training
    model.eval()
    score = LossAccuracy()
    try:
        with no_grad():
            for index, (x, y) in enumerate(loader):
                if max_batches is not None and index >= max_batches:
                    break
                if check_batch is not None:
                    check_batch(x, index)
                logits = forward(model, x, time_steps)
                score.add(float(loss_fn(logits, y).item()), logits, y)
    finally:
        model.train(was_training)
    return score
