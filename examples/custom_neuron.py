"""A neuron of your own: a LIF with *soft* reset (subtract the threshold instead of zeroing),
written as a Function with its hand-derived BPTT, proved by gradcheck, used in an MS-ResNet block.

    python examples/custom_neuron.py --small           # seconds

Forward, for t = 0..T-1 (REFERENCE §1 with a soft reset), d[t] = u[t] - V_th:
    u[t] = tau * h[t-1] + x[t],   s[t] = H(d[t]),   h[t] = u[t] - V_th * s[t]
Backward (g_u[t] = dL/du[t]; sg = the surrogate of dH/dd; the reset term counts unless detached):
    g_u[t] = g_s[t] * sg(d[t]) + g_u[t+1] * tau * (1 - V_th * sg(d[t]) * (not detach_reset))
    dL/dx[t] = g_u[t]
gradcheck needs a differentiable forward: the "smooth" surrogate makes H a sigmoid too, so central
differences can check every term of the backward (the reset term included, detach_reset=False).
"""

import json

import numpy as np
from _common import parse

import tinyspike as ts
from tinyspike import backend, nn, optim
from tinyspike import functional as F
from tinyspike.autograd import Function
from tinyspike.data import DataLoader, build_dataset, transforms
from tinyspike.functional import surrogate as surrogates
from tinyspike.models.blocks import MSBlock
from tinyspike.models.resnet import SpikingResNet


class SoftResetLIFFunction(Function):
    @staticmethod
    def forward(ctx, x, v_th, decay, surrogate, detach_reset):
        xp = backend.array_module_of(x)
        vth, tau = x.dtype.type(v_th), x.dtype.type(decay)
        spikes, membrane = xp.empty_like(x), xp.empty_like(x)
        h = xp.zeros_like(x[0])
        for t in range(x.shape[0]):
            u = tau * h + x[t]
            s = surrogate.spike(u - vth)
            spikes[t], membrane[t] = s, u
            h = u - vth * s
        ctx.save_for_backward(membrane)
        ctx.constants = (vth, tau, surrogate, detach_reset)
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes):
        (membrane,) = ctx.saved_tensors
        vth, tau, surrogate, detach_reset = ctx.constants
        xp = backend.array_module_of(grad_spikes)
        grad_x = xp.empty_like(grad_spikes)
        g_next = xp.zeros_like(grad_spikes[0])  # g_u[t+1]; zero after the last step
        for t in range(grad_spikes.shape[0] - 1, -1, -1):
            sg = surrogate.grad(membrane[t] - vth)
            carry = tau * g_next if detach_reset else tau * g_next * (1 - vth * sg)
            g_next = grad_spikes[t] * sg + carry
            grad_x[t] = g_next
        return grad_x, None, None, None, None


def soft_lif(x, v_th=0.5, decay=0.25, surrogate="rectangular", detach_reset=True):
    return SoftResetLIFFunction.apply(x, v_th, decay, surrogates.get(surrogate), detach_reset)


class SoftResetLIF(nn.Module):
    def forward(self, x):
        return soft_lif(x)


class SoftResetMSBlock(MSBlock):
    """An MS block (x + BN2(Conv2(LIF(BN1(Conv1(LIF x)))))) whose two neurons reset softly."""

    def __init__(self, in_channels, out_channels, stride=1, config=None):
        super().__init__(in_channels, out_channels, stride, config)
        self.lif1, self.lif2 = SoftResetLIF(), SoftResetLIF()


args = parse(__doc__.splitlines()[0])
rng = np.random.default_rng(0)
x_check = rng.normal(0.5, 0.5, size=(6, 4))  # [T, neurons], float64 as gradcheck requires
passed = bool(ts.gradcheck(lambda x: soft_lif(x, surrogate=surrogates.Smooth(4.0), detach_reset=False), x_check))
try:  # the check can fail: with the reset term dropped, backward no longer matches the forward
    ts.gradcheck(lambda x: soft_lif(x, surrogate=surrogates.Smooth(4.0), detach_reset=True), x_check)
    negative_control_caught = False
except ts.GradcheckError:
    negative_control_caught = True
print(f"gradcheck passed: {passed}; a dropped reset term caught: {negative_control_caught}")

# the neuron in a network: MS-ResNet-8 with soft-reset blocks, a few SGD steps on the digits
size, steps = (8, 5) if args.small else (16, 45)
model = SpikingResNet(SoftResetMSBlock, stage_blocks=(1, 1, 1), widths=(4, 8, 8), time_steps=2, seed=0)
train_set = build_dataset("digits", "train", size=size)
loader = DataLoader(train_set, 32, shuffle=True, seed=0, transform=transforms.preset("none", train_set.mean, train_set.std))
optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
losses = []
for step, (images, labels) in zip(range(steps), loader):
    optimizer.zero_grad()
    loss = F.cross_entropy(model(images), labels)
    loss.backward()
    optimizer.step()
    losses.append(float(loss.item()))
print(f"soft-reset MS-ResNet-8: loss {losses[0]:.3f} -> {losses[-1]:.3f} in {steps} steps")
result = {"gradcheck_passed": passed, "negative_control_caught": negative_control_caught, "losses": losses,
          "soft_reset_layers": sum(isinstance(m, SoftResetLIF) for _, m in model.named_modules())}
(args.out / "custom_neuron.json").write_text(json.dumps(result, indent=2))
