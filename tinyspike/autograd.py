"""Reverse-mode automatic differentiation: Tensor, Function, the tape and ``backward()``.

How it works, in four sentences. A ``Tensor`` wraps a backend array (NumPy or CuPy). Every
operation on Tensors is a ``Function``: its ``forward`` computes output arrays from input arrays and
saves on a context object what its ``backward`` will need; its ``backward`` turns the gradient of
the loss with respect to each output into the gradient with respect to each input (the chain rule,
done by hand). ``Function.apply`` records a node linking the outputs to the inputs, so the recorded
nodes form a graph (the "tape"). ``loss.backward()`` visits the nodes from the loss back to the
leaves in reverse topological order, calls each ``backward`` once, and frees its saved arrays.

Gradients of leaves *accumulate*: ``x.grad`` is added to on every ``backward()`` until you reset
it (``zero_grad()``). This is deliberate (it lets gradients from several losses or micro-batches
add up), and it is the classic surprise: forget ``optimizer.zero_grad()`` and each step uses the sum
of all past gradients.

Writing a new Function: see ``docs/function_contract.md``; derive the backward in the docstring,
then check it with ``tinyspike.gradcheck``.
"""

from __future__ import annotations

import threading
import weakref
from contextlib import contextmanager

import numpy as np

from tinyspike import backend, checks

# Grad mode is per thread, so a data-loading thread never changes what the training thread records.
_grad_mode = threading.local()


def is_grad_enabled() -> bool:
    """Whether operations on this thread are recorded for backward (False inside ``no_grad()``)."""
    return getattr(_grad_mode, "enabled", True)


@contextmanager
def _grad_mode_as(enabled: bool):
    """Set this thread's grad mode inside the block; the previous one comes back after it."""
    previous = is_grad_enabled()
    _grad_mode.enabled = enabled
    try:
        yield
    finally:
        _grad_mode.enabled = previous


def no_grad():
    """Run the block without recording the graph (evaluation, parameter updates)."""
    return _grad_mode_as(False)


def enable_grad():
    """Record the graph again inside the block, even within an enclosing ``no_grad()``."""
    return _grad_mode_as(True)


class Context:
    """What a Function's forward leaves for its backward."""

    def __init__(self, needs_input_grad: tuple[bool, ...]):
        self.needs_input_grad = needs_input_grad
        self.saved_tensors: tuple = ()

    def save_for_backward(self, *arrays) -> None:
        self.saved_tensors = arrays


class Edge:
    """Where a gradient goes: a leaf Tensor, or output ``index`` of the ``node`` that made an input.

    The graph stores edges, not the input Tensors themselves: holding a non-leaf Tensor would keep
    its array (an activation) alive until backward even when no backward needs it. Only what a
    Function saved on its ctx stays in memory. A weak reference finds the Tensor again if it asked
    for ``retain_grad()``.
    """

    __slots__ = ("leaf", "node", "index", "shape", "dtype", "tensor_ref")

    def __init__(self, tensor: "Tensor"):
        self.leaf = tensor if tensor._node is None else None
        self.node, self.index = tensor._node, tensor._output_index
        self.shape, self.dtype = tensor.shape, tensor.dtype
        self.tensor_ref = None if self.leaf is not None else weakref.ref(tensor)


class Node:
    """One recorded Function call: its context and an Edge for each argument that needs a gradient."""

    __slots__ = ("function", "ctx", "inputs", "output_meta", "freed")

    def __init__(self, function, ctx, inputs, output_meta):
        self.function, self.ctx = function, ctx  # the Function subclass, and the ctx of this call
        self.inputs = inputs  # one entry per forward argument: an Edge, or None (no gradient wanted)
        self.output_meta = output_meta  # (shape, dtype) of each output, to build zero gradients
        self.freed = False

    def __repr__(self):
        return f"<Node {self.function.__name__}>"


class Function:
    """Base class of every differentiable operation (see the module docstring)."""

    @staticmethod
    def forward(ctx, *args):  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def backward(ctx, *grad_outputs):  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def apply(cls, *args):
        needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        record = any(needs) and is_grad_enabled()
        ctx = Context(needs if record else (False,) * len(args))
        result = cls.forward(ctx, *[a.data if isinstance(a, Tensor) else a for a in args])
        is_tuple = isinstance(result, tuple)
        outputs = []
        for out in result if is_tuple else (result,):
            if isinstance(out, np.generic):  # NumPy turns 0-d results into scalars: make them 0-d arrays again
                out = np.asarray(out)
            elif not backend.is_array(out):
                raise TypeError(f"{cls.__name__}.forward must return arrays, got {type(out).__name__}")
            outputs.append(out)
        node = None  # not recorded: the outputs are leaves that need no gradient
        if record:
            edges = [Edge(a) if need else None for a, need in zip(args, needs)]
            node = Node(cls, ctx, edges, [(o.shape, o.dtype) for o in outputs])
        tensors = tuple(Tensor._wrap(out, node, i) for i, out in enumerate(outputs))
        return tensors if is_tuple else tensors[0]


class Tensor:
    """An array plus what autograd needs: ``requires_grad``, ``grad`` and the node that made it.

    ``Tensor(data, requires_grad=False)``: ``data`` is an array of the active backend (NumPy or
    CuPy; a NumPy array is moved to the GPU when the backend is CuPy), or a Python number/list,
    which is converted with the default floating dtype if it holds floats. The dtype of an array
    is kept as it is: tinyspike never changes a dtype behind your back. A Tensor holds real
    numbers or bools only: strings, None, objects, complex numbers and ragged lists raise a
    TypeError, and ``requires_grad`` must be True or False.

    Arithmetic with a Python or NumPy number casts the number to the Tensor's dtype, so it must
    fit that dtype without changing its kind: ``x * 2`` is fine for a float or an int x, but
    ``int_tensor * 0.5`` raises (convert first: ``int_tensor.astype(np.float32) * 0.5``).
    """

    __array_priority__ = 1000  # make `ndarray + Tensor` call Tensor.__radd__

    def __init__(self, data, requires_grad: bool = False):
        requires_grad = checks.boolean("Tensor", "requires_grad", requires_grad)
        array = tensor_checks.tensor_data(data)
        if requires_grad and array.dtype.kind != "f":
            raise TypeError(f"Tensor: only floating tensors can require grad, got dtype {array.dtype}")
        self._set(array, requires_grad)

    @classmethod
    def _wrap(cls, array, node=None, index=0):
        """A Tensor around a checked array: output ``index`` of ``node``, or a leaf without grad."""
        return cls.__new__(cls)._set(array, node is not None, node, index)

    def _set(self, array, requires_grad: bool, node=None, index: int = 0) -> "Tensor":
        self.data, self.requires_grad, self.grad = array, requires_grad, None
        self._node, self._output_index = node, index  # the Node that produced this tensor (None for leaves)
        self._retain_grad = False
        return self

    # ---- facts about the array -------------------------------------------------------------
    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)
    is_leaf = property(lambda self: self._node is None)
    grad_fn = property(lambda self: self._node)

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({backend.to_numpy(self.data)!r}{grad})"

    def numpy(self) -> np.ndarray:
        """A NumPy copy of the data (a view on the CPU backend); detached from the graph."""
        return backend.to_numpy(self.data)

    def item(self):
        return self.data.item()

    def detach(self) -> "Tensor":
        """The same array, cut from the graph (no gradient flows back through it)."""
        return Tensor._wrap(self.data)

    def requires_grad_(self, flag: bool = True) -> "Tensor":
        flag = checks.boolean("requires_grad_", "flag", flag)
        if not self.is_leaf:
            raise ValueError("requires_grad_ can only be set on leaf tensors (not on results of ops)")
        if flag and self.dtype.kind != "f":
            raise TypeError(f"requires_grad_: only floating tensors can require grad, got dtype {self.dtype}")
        self.requires_grad = flag
        return self

    def retain_grad(self) -> "Tensor":
        """Keep ``.grad`` on this non-leaf tensor during backward (leaves always keep theirs)."""
        self._retain_grad = True
        return self

    def zero_grad(self) -> None:
        self.grad = None

    # ---- backward --------------------------------------------------------------------------
    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad`` (``grad`` seeds it; default 1 for a scalar).

        ``grad`` (dL/dself) must be a Tensor or an array of this tensor's backend, shape and dtype:
        the engine never converts a seed, so a wrong one is named at once, not deep in a backward.
        """
        retain_graph = checks.boolean("backward", "retain_graph", retain_graph)
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad (no graph was recorded)")
        run_backward(self, tensor_checks.backward_seed(self, grad), retain_graph)

    # ---- operators: each is a Function of tinyspike.ops (the r-forms have the Tensor on the right) --
    def __add__(self, other): return ops.add(self, other)
    def __radd__(self, other): return ops.add(other, self)
    def __sub__(self, other): return ops.sub(self, other)
    def __rsub__(self, other): return ops.sub(other, self)
    def __mul__(self, other): return ops.mul(self, other)
    def __rmul__(self, other): return ops.mul(other, self)
    def __truediv__(self, other): return ops.div(self, other)
    def __rtruediv__(self, other): return ops.div(other, self)
    def __neg__(self): return ops.neg(self)
    def __pow__(self, exponent): return ops.pow(self, exponent)
    def __matmul__(self, other): return ops.matmul(self, other)
    def __rmatmul__(self, other): return ops.matmul(other, self)
    def __getitem__(self, index): return ops.getitem(self, index)
    def exp(self): return ops.exp(self)
    def log(self): return ops.log(self)
    def sum(self, axis=None, keepdims=False): return ops.sum(self, axis, keepdims)
    def mean(self, axis=None, keepdims=False): return ops.mean(self, axis, keepdims)
    def max(self, axis=None, keepdims=False): return ops.max(self, axis, keepdims)
    def reshape(self, *shape): return ops.reshape(self, _sizes(shape))  # x.reshape(2, 3) or x.reshape((2, 3))
    def transpose(self, *axes): return ops.transpose(self, _sizes(axes) or None)  # no axes: reversed
    permute = transpose
    T = property(lambda self: ops.transpose(self, None))

    def astype(self, dtype):
        """An explicit dtype change (the gradient is cast back in backward; to int or bool, none flows)."""
        return ops.astype(self, dtype)

    # Comparisons give boolean tensors that carry no gradient (a step function has derivative 0).
    def __gt__(self, other): return Tensor._wrap(self.data > tensor_checks.comparison_operand(">", self, other))
    def __ge__(self, other): return Tensor._wrap(self.data >= tensor_checks.comparison_operand(">=", self, other))
    def __lt__(self, other): return Tensor._wrap(self.data < tensor_checks.comparison_operand("<", self, other))
    def __le__(self, other): return Tensor._wrap(self.data <= tensor_checks.comparison_operand("<=", self, other))

    __hash__ = object.__hash__  # tensors are hashed by identity (used as dict keys by optimizers)


def _sizes(args: tuple) -> tuple:
    """``(2, 3)`` from the arguments of ``x.reshape(2, 3)`` or of ``x.reshape((2, 3))``."""
    return tuple(args[0]) if len(args) == 1 and isinstance(args[0], (tuple, list)) else args


def _topological_order(root: Node) -> list[Node]:
    """Nodes reachable from ``root``, each after every node that consumes its outputs.

    Iterative depth-first search: a 482-layer network makes graphs far deeper than Python's
    recursion limit.
    """
    order, visited = [], {id(root)}
    stack = [(root, iter(root.inputs))]
    while stack:
        node, children = stack[-1]
        for edge in children:
            child = edge.node if edge is not None else None
            if child is not None and id(child) not in visited:
                visited.add(id(child))
                stack.append((child, iter(child.inputs)))
                break
        else:
            stack.pop()
            order.append(node)  # post-order: inputs' nodes come before this one
    order.reverse()  # now the root first, leaves' consumers last
    return order


def run_backward(root: Tensor, grad, retain_graph: bool = False) -> None:
    """Propagate ``grad`` (d loss / d root) to every leaf that requires grad."""
    if root._node is None:  # a leaf: its gradient is the seed itself
        _accumulate_leaf(root, grad)
        return
    pending = {(id(root._node), root._output_index): grad}
    for node in _topological_order(root._node):
        if node.freed:
            raise RuntimeError(
                f"backward through {node.function.__name__} a second time: its saved arrays were freed "
                "after the first backward. Pass retain_graph=True to the first backward() if you need this."
            )
        grads_out = []
        for i, (shape, dtype) in enumerate(node.output_meta):
            g = pending.pop((id(node), i), None)
            grads_out.append(backend.xp().zeros(shape, dtype=dtype) if g is None else g)
        grads_in = node.function.backward(node.ctx, *grads_out)
        if not isinstance(grads_in, tuple):
            grads_in = (grads_in,)
        if len(grads_in) != len(node.inputs):
            raise RuntimeError(
                f"{node.function.__name__}.backward returned {len(grads_in)} gradients "
                f"for {len(node.inputs)} forward arguments"
            )
        for edge, g in zip(node.inputs, grads_in):
            if edge is None or g is None:
                continue
            if g.shape != edge.shape or g.dtype != edge.dtype:
                raise RuntimeError(
                    f"{node.function.__name__}.backward returned a gradient of shape {g.shape} dtype {g.dtype} "
                    f"for an input of shape {edge.shape} dtype {edge.dtype}"
                )
            if edge.leaf is not None:
                _accumulate_leaf(edge.leaf, g)
            else:
                tensor = edge.tensor_ref()
                if tensor is not None and tensor._retain_grad:
                    tensor.grad = g.copy() if tensor.grad is None else tensor.grad + g
                key = (id(edge.node), edge.index)
                pending[key] = pending[key] + g if key in pending else g
        if not retain_graph:
            node.ctx.saved_tensors = ()
            node.freed = True


def _accumulate_leaf(tensor: Tensor, grad) -> None:
    if not tensor.requires_grad:
        return
    if tensor.grad is None:
        tensor.grad = grad.copy()  # a copy: the array may be a view a Function still uses
    else:
        tensor.grad += grad


def concatenate(tensors, axis=0):
    """Join tensors along an existing axis (differentiable)."""
    return ops.concatenate(tensors, axis)


def stack(tensors, axis=0):
    """Join tensors along a new axis (differentiable)."""
    return ops.stack(tensors, axis)


# ops defines the elementary Functions on top of Tensor, and tensor_checks the checks of their
# arguments; the operators above look them up at call time, so importing them last (and any of
# the three modules first) is safe.
from tinyspike import ops, tensor_checks  # noqa: E402
