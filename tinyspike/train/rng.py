"""Save and restore every random generator a training run draws from, for exact resumes.

What draws random numbers during training: the backend's global generator (``backend.rng()``,
used by dropout layers without their own generator) and any generator a module keeps as an
attribute (``Dropout(generator=...)``). The data order and augmentation do not need saving: the
DataLoader derives them from (seed, epoch) alone.

NumPy's generator states are plain dicts of ints (PCG64's 128-bit state included), which JSON keeps
exactly. CuPy's generators do not expose their state; on the GPU backend they are skipped, so a
resumed GPU run with dropout draws different masks (resumes are bit-exact on the CPU backend).
"""

from __future__ import annotations

import numpy as np

from tinyspike import backend


def _is_generator(value) -> bool:
    return isinstance(value, np.random.Generator) or (
        type(value).__module__.startswith("cupy") and type(value).__name__ == "Generator"
    )


def _state_of(generator):
    """NumPy's state dict, or None: CuPy's ``bit_generator.state`` is a *method* (a device pointer)."""
    state = getattr(getattr(generator, "bit_generator", None), "state", None)
    return state if isinstance(state, dict) else None


def module_generators(model) -> dict:
    """``{"<module>:<attribute>": generator}`` for every generator held by a module of ``model``."""
    found = {}
    for name, module in model.named_modules():
        for attr, value in vars(module).items():
            if _is_generator(value):
                found[f"{name}:{attr}"] = value
    return found


def capture_rng_states(model) -> dict:
    """The states of the backend's generator and of every module's generator (JSON-able)."""
    states = {"backend": _state_of(backend.rng())}
    for key, generator in module_generators(model).items():
        states[key] = _state_of(generator)
    return states


def _set_state(generator, state) -> None:
    if _state_of(generator) is None:
        return  # a CuPy generator (a CPU checkpoint resumed on the GPU): it has no state to set
    try:
        generator.bit_generator.state = state
    except (AttributeError, TypeError, ValueError):
        pass  # another kind of generator (a CPU checkpoint resumed on the GPU): keep its own state


def restore_rng_states(model, states: dict) -> None:
    """Put the generators back in the states ``capture_rng_states`` saved (missing ones: left alone)."""
    if states.get("backend") is not None:
        _set_state(backend.rng(), states["backend"])
    for key, generator in module_generators(model).items():
        if states.get(key) is not None:
            _set_state(generator, states[key])
