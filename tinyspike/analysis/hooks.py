"""A base for observers that watch a model through forward hooks and can be detached again."""

from __future__ import annotations


def array_of(value):
    """The backend array of a Tensor (or the array itself; ``ndarray.data`` is a memoryview)."""
    from tinyspike.autograd import Tensor

    return value.data if isinstance(value, Tensor) else value


class HookedObserver:
    """Holds the hook handles it registered; ``remove()`` (or leaving a ``with`` block) unhooks all.

    Subclasses append each ``module.register_forward_hook(...)`` handle to ``self._handles``.
    """

    def __init__(self):
        self._handles = []

    def remove(self) -> None:
        """Unregister every hook, leaving the model as it was."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False
