"""Operations and energy of a spiking network, by the paper's method (REFERENCE §8, Table V).

An ANN does one multiply-accumulate (MAC) per weight per output position; a spiking network's
convolution that receives spikes only *adds* a weight when an input spike arrives, so its work
is counted in synaptic operations (SyOPs), each an accumulate (AC):

    MACs of a conv, per time step and image   = C_out · (C_in / groups) · k_h · k_w · H_out · W_out
    SyOPs of a spike-driven conv, per image   = MACs · T · r         r = firing rate of its INPUT
    E(ANN) = FLOPs · E_MAC      E(SNN) = SyOPs · E_AC      E_MAC = 4.6 pJ, E_AC = 0.9 pJ (45 nm)

"FLOPs" here (as in Table V) is the sum of the MACs of the counted convs for one time step. Not
counted (they see no spikes): the encoding (stem) conv and the shortcut projections, and the final
fully connected layer. Checks (REFERENCE §8): ImageNet MS-ResNet-34 has 3.53 G FLOPs; at T = 6 and
r = 0.225 that is 4.77 G SyOPs, E(SNN) = 4.29 mJ against E(ANN) = 16.22 mJ; the CIFAR10-DVS
MS-ResNet-20 has 40.11 M FLOPs per frame, E(ANN) = 184.5 µJ.

``measure_energy(model, batches, time_steps)`` finds the numbers of a real model with forward
hooks on its ``Conv2d`` layers: each hook reads the weight shape, the output's spatial size and
the spikes arriving at the input. Which convs are not counted:

- ``stem``: a conv whose dotted name has a part starting with ``stem`` (or ``encoder``), and in
  any case the first conv the forward pass runs (the encoding layer);
- ``shortcut``: a conv whose name has a part starting with ``shortcut``, ``downsample`` or
  ``proj``;
- a module may also say it itself with an attribute ``energy_role`` = ``"stem"``,
  ``"shortcut"`` or ``"spike"``.

Every other conv is *spike-driven* when its input holds only 0s and 1s. A conv whose input is
real-valued although it sits on the residual path (the W/O-LIF and SR-C variants of §4) is not
spike-driven: its work is reported as ``mac_ops`` and charged at E_MAC per time step in E(SNN), so
such a variant does not look cheaper than it is. MS-ResNet has none.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import asdict, dataclass, field

import numpy as np

from tinyspike import backend
from tinyspike.autograd import no_grad
from tinyspike.nn.layers import Conv2d
from tinyspike.nn.monitor import HookedObserver, array_of

E_MAC = 4.6e-12  # joules per 32-bit float multiply-accumulate, 45 nm (Horowitz 2014)
E_AC = 0.9e-12  # joules per 32-bit float accumulate

ROLES = ("spike", "stem", "shortcut", "non-spike")
_STEM_PREFIXES = ("stem", "encoder")
_SHORTCUT_PREFIXES = ("shortcut", "downsample", "proj")


# ------------------------------------------------------------------------------ the formulas


def conv_macs(c_in: int, c_out: int, kernel, out_hw, groups: int = 1) -> int:
    """Multiply-accumulates of one conv for one image and one time step:
    ``C_out · (C_in / groups) · k_h · k_w · H_out · W_out``."""
    kh, kw = (kernel, kernel) if isinstance(kernel, (int, np.integer)) else kernel
    h, w = (out_hw, out_hw) if isinstance(out_hw, (int, np.integer)) else out_hw
    for name, v in (("c_in", c_in), ("c_out", c_out), ("kernel", kh), ("kernel", kw), ("out_hw", h), ("out_hw", w), ("groups", groups)):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"conv_macs: {name} must be a positive int, got {v!r}")
    if c_in % groups or c_out % groups:
        raise ValueError(f"conv_macs: groups={groups} must divide c_in={c_in} and c_out={c_out}")
    return int(c_out) * (int(c_in) // int(groups)) * int(kh) * int(kw) * int(h) * int(w)


def syops(macs_per_step: float, time_steps: int, firing_rate: float) -> float:
    """Synaptic operations of a spike-driven conv: ``MACs · T · r``."""
    if time_steps < 1:
        raise ValueError(f"syops: time_steps must be >= 1, got {time_steps!r}")
    if not 0.0 <= firing_rate <= 1.0:
        raise ValueError(f"syops: firing_rate must be in [0, 1], got {firing_rate!r}")
    return float(macs_per_step) * time_steps * firing_rate


def energy_ann(flops: float) -> float:
    """Joules of an ANN doing ``flops`` MACs: ``FLOPs · 4.6 pJ``."""
    return float(flops) * E_MAC


def energy_snn(syops_count: float, mac_ops: float = 0.0) -> float:
    """Joules of an SNN doing ``syops_count`` accumulates (plus ``mac_ops`` real-valued MACs)."""
    return float(syops_count) * E_AC + float(mac_ops) * E_MAC


# ------------------------------------------------------------------------------ the report


@dataclass
class ConvEnergy:
    """One conv layer's share. ``macs`` is per image per time step; ``input_rate`` the fraction
    of ones in its input (None when the input is not spikes); ``syops`` and ``mac_ops`` per image
    over all T steps (0 for layers that are not counted)."""

    name: str
    role: str
    weight_shape: tuple
    out_hw: tuple
    macs: int
    input_rate: float | None
    syops: float
    mac_ops: float

    @property
    def counted(self) -> bool:
        return self.role in ("spike", "non-spike")


@dataclass
class EnergyReport:
    """Per-image operations and energy of a model at ``time_steps`` steps."""

    time_steps: int
    layers: list = field(default_factory=list)
    images: int = 0

    @property
    def flops(self) -> int:
        """MACs per time step of the counted convs (Table V's FLOPs: what an ANN would do)."""
        return int(sum(l.macs for l in self.layers if l.counted))

    @property
    def syops(self) -> float:
        return float(sum(l.syops for l in self.layers))

    @property
    def mac_ops(self) -> float:
        return float(sum(l.mac_ops for l in self.layers))

    @property
    def input_rate(self) -> float:
        """MAC-weighted firing rate of the spike-driven convs' inputs (SyOPs / (FLOPs · T))."""
        spike_macs = sum(l.macs for l in self.layers if l.role == "spike")
        return self.syops / (spike_macs * self.time_steps) if spike_macs else float("nan")

    @property
    def energy_ann(self) -> float:
        return energy_ann(self.flops)

    @property
    def energy_snn(self) -> float:
        return energy_snn(self.syops, self.mac_ops)

    @property
    def ratio(self) -> float:
        """E(ANN) / E(SNN): how many times less energy the SNN needs."""
        e = self.energy_snn
        return self.energy_ann / e if e > 0 else float("inf")

    def to_dict(self) -> dict:
        return {
            "time_steps": self.time_steps,
            "images": self.images,
            "flops": self.flops,
            "syops": self.syops,
            "mac_ops": self.mac_ops,
            "input_rate": _finite_or_none(self.input_rate),
            "energy_ann_J": self.energy_ann,
            "energy_snn_J": self.energy_snn,
            "ratio_ann_over_snn": _finite_or_none(self.ratio),
            "E_MAC_J": E_MAC,
            "E_AC_J": E_AC,
            "layers": [
                {**asdict(l), "weight_shape": list(l.weight_shape), "out_hw": list(l.out_hw)}
                for l in self.layers
            ],
        }

    def table(self) -> str:
        """The per-layer table and the totals, as text."""
        rows = [("layer", "role", "weight", "out", "MACs/step", "in rate", "SyOPs")]
        for l in self.layers:
            rows.append((
                l.name, l.role, "x".join(str(s) for s in l.weight_shape), "x".join(str(s) for s in l.out_hw),
                format_count(l.macs), "-" if l.input_rate is None else f"{l.input_rate:.4f}",
                format_count(l.syops) if l.counted else "(not counted)",
            ))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
        lines.insert(1, "-" * len(lines[0]))
        lines.append("")
        summary = [
            ("FLOPs (counted convs, one step)", format_count(self.flops)),
            (f"SyOPs (T={self.time_steps}, input firing rate {self.input_rate:.4f})", format_count(self.syops)),
        ]
        if self.mac_ops:
            summary.append(("MACs on non-spike inputs (all steps)", format_count(self.mac_ops)))
        summary += [
            ("E(ANN) = FLOPs x 4.6 pJ", format_energy(self.energy_ann)),
            ("E(SNN) = SyOPs x 0.9 pJ" + (" + MACs x 4.6 pJ" if self.mac_ops else ""), format_energy(self.energy_snn)),
            ("E(ANN) / E(SNN)", f"{self.ratio:.2f}"),
        ]
        width = max(len(k) for k, _ in summary)
        lines += [f"{k:<{width}}  {v}" for k, v in summary]
        return "\n".join(lines)


def _finite_or_none(v):
    return float(v) if math.isfinite(v) else None


def format_count(n: float) -> str:
    """3.53 G, 40.11 M, 512.00 k, 12."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f}" if float(n).is_integer() else f"{n:.2f}"


def format_energy(joules: float) -> str:
    for unit, scale in (("J", 1.0), ("mJ", 1e-3), ("uJ", 1e-6), ("nJ", 1e-9)):
        if abs(joules) >= scale:
            return f"{joules / scale:.2f} {unit}"
    return f"{joules / 1e-12:.2f} pJ"


# ------------------------------------------------------------------------------ measuring


def is_conv_layer(module) -> bool:
    """True for the layers whose operations are counted: ``Conv2d``."""
    return isinstance(module, Conv2d)


def _role_from_name(name: str, module) -> str | None:
    declared = getattr(module, "energy_role", None)
    if declared is not None:
        if declared not in ("spike", "stem", "shortcut"):
            raise ValueError(f"{name}.energy_role must be 'spike', 'stem' or 'shortcut', got {declared!r}")
        return declared
    parts = name.lower().split(".")
    if any(p.startswith(_STEM_PREFIXES) for p in parts):
        return "stem"
    if any(p.startswith(_SHORTCUT_PREFIXES) for p in parts):
        return "shortcut"
    return None


class _ConvStats:
    __slots__ = ("name", "weight_shape", "out_hw", "ones", "elements", "binary", "order", "role")

    def __init__(self, name, role):
        self.name, self.role = name, role
        self.weight_shape = None
        self.out_hw = None
        self.ones = 0.0
        self.elements = 0
        self.binary = True
        self.order = None


class EnergyCounter(HookedObserver):
    """Forward hooks on every conv of ``model`` that gather what ``report()`` needs.

    Use it around evaluation forwards (``with EnergyCounter(model) as c: ...; c.report(T)``).
    The checks on the inputs (are they 0/1? how many ones?) cost two passes over each conv input.
    """

    def __init__(self, model):
        self._stats: "OrderedDict[str, _ConvStats]" = OrderedDict()
        super().__init__()
        self._calls = 0
        for name, module in model.named_modules():
            if is_conv_layer(module):
                name = name or type(module).__name__
                self._stats[name] = _ConvStats(name, _role_from_name(name, module))
                self._handles.append(module.register_forward_hook(self._make_hook(name)))
        if not self._stats:
            raise ValueError(f"{type(model).__name__} has no Conv2d layer to count")

    def _make_hook(self, name):
        stats = self._stats[name]

        def hook(module, inputs, output):
            x = inputs[0]
            x = array_of(x)
            out = array_of(output)
            weight = array_of(module.weight)
            if stats.order is None:
                stats.order = self._calls
                self._calls += 1
                stats.weight_shape = tuple(int(s) for s in weight.shape)
                stats.out_hw = tuple(int(s) for s in out.shape[-2:])
            xp = backend.array_module_of(x)
            stats.ones = stats.ones + x.sum(dtype=np.float64)
            stats.elements += int(x.size)
            if stats.binary:
                stats.binary = bool(xp.all((x == 0) | (x == 1)).item())  # explicit sync
            return None

        return hook

    def report(self, time_steps: int, images: int = 0) -> EnergyReport:
        """The per-image report for ``time_steps`` steps (convs that never ran are left out)."""
        if not isinstance(time_steps, (int, np.integer)) or time_steps < 1:
            raise ValueError(f"time_steps must be a positive int, got {time_steps!r}")
        ran = sorted((s for s in self._stats.values() if s.order is not None), key=lambda s: s.order)
        if not ran:
            raise ValueError("no conv layer ran: call the model inside the EnergyCounter first")
        layers = []
        for i, s in enumerate(ran):
            role = s.role
            if role is None:
                role = "stem" if i == 0 else ("spike" if s.binary else "non-spike")
            c_out, c_in_g, kh, kw = s.weight_shape
            macs = c_out * c_in_g * kh * kw * s.out_hw[0] * s.out_hw[1]
            rate = float(backend.to_numpy(s.ones)) / s.elements if s.elements and s.binary else None
            layer_syops = syops(macs, int(time_steps), rate) if role == "spike" else 0.0
            mac_ops = float(macs) * time_steps if role == "non-spike" else 0.0
            layers.append(ConvEnergy(s.name, role, s.weight_shape, s.out_hw, int(macs), rate, layer_syops, mac_ops))
        return EnergyReport(int(time_steps), layers, int(images))


def measure_energy(model, batches, time_steps: int, max_batches: int | None = None) -> EnergyReport:
    """Run ``model`` in evaluation mode on ``batches`` (inputs, or ``(x, y)`` pairs) and return its
    per-image ``EnergyReport`` at ``time_steps`` steps, firing rates averaged over every batch."""
    was_training = model.training
    model.eval()
    images = 0
    try:
        with EnergyCounter(model) as counter, no_grad():
            for i, batch in enumerate(batches):
                if max_batches is not None and i >= max_batches:
                    break
                x = batch[0] if isinstance(batch, (tuple, list)) else batch
                model(x, time_steps=time_steps)
                shape = getattr(x, "shape")
                images += int(shape[1] if len(shape) == 5 else shape[0])
        return counter.report(time_steps, images)
    finally:
        model.train(was_training)
