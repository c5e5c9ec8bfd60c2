"""MS-ResNet in PyTorch eager, for the benchmarks that time PyTorch beside tinyspike (never the tests).

The network of REFERENCE.md built from ``torch.nn``: conv3×3 (no bias) → BatchNorm2d → a LIF
written as a Python loop over T with a rectangular surrogate (width 1, V_th = 0.5, τ = 0.25,
hard reset detached), MS blocks ``x + BN₂(Conv₂(LIF(BN₁(Conv₁(LIF(x))))))`` with γ₂ = 0,
1×1 projection shortcuts, the stem computed once and repeated over T (direct encoding,
REFERENCE §3), global average pooling, the mean over T, then the classifier. It has the same
layers and shapes as ``tinyspike.models.build(f"ms_resnet{depth}")``, so the two can be timed on
the same work. ``torch`` is passed in: importing this file does not import PyTorch.
"""

from __future__ import annotations


def build_torch_model(torch, depth, num_classes=10, time_steps=6, v_th=0.5, decay=0.25):
    nn = torch.nn

    class Rectangular(torch.autograd.Function):
        @staticmethod
        def forward(ctx, d):
            ctx.save_for_backward(d)
            return (d > 0).to(d.dtype)

        @staticmethod
        def backward(ctx, grad):
            (d,) = ctx.saved_tensors
            return grad * (d.abs() < 0.5).to(grad.dtype)  # width a = 1: 1/a · 1[|d| < a/2]

    class LIF(nn.Module):
        """[T·B, ...] folded; a Python loop over T, hard reset detached (REFERENCE §1)."""

        def forward(self, x):
            xs = x.view(time_steps, -1, *x.shape[1:])
            u, s, out = None, None, []
            for t in range(time_steps):
                u = xs[t] if u is None else decay * u * (1 - s.detach()) + xs[t]
                s = Rectangular.apply(u - v_th)
                out.append(s)
            return torch.stack(out).view_as(x)

    def conv_bn(cin, cout, k, stride, gamma):
        bn = nn.BatchNorm2d(cout)
        nn.init.constant_(bn.weight, gamma)
        return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), bn)

    class MSBlock(nn.Module):
        """y = x + BN₂(Conv₂(LIF(BN₁(Conv₁(LIF(x)))))), projection when stride ≠ 1 or widths change."""

        def __init__(self, cin, cout, stride):
            super().__init__()
            self.branch = nn.Sequential(LIF(), conv_bn(cin, cout, 3, stride, 0.5), LIF(), conv_bn(cout, cout, 3, 1, 0.0))
            self.shortcut = conv_bn(cin, cout, 1, stride, 0.5) if stride != 1 or cin != cout else nn.Identity()

        def forward(self, x):
            return self.shortcut(x) + self.branch(x)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            n = (depth - 2) // 6
            self.stem = conv_bn(3, 16, 3, 1, 0.5)
            blocks, cin = [], 16
            for width, stride in ((16, 1), (32, 2), (64, 2)):
                for i in range(n):
                    blocks.append(MSBlock(cin, width, stride if i == 0 else 1))
                    cin = width
            self.blocks = nn.Sequential(*blocks)
            self.lif = LIF()
            self.fc = nn.Linear(64, num_classes)

        def forward(self, images):
            x = self.stem(images)  # direct encoding: the stem once, repeated over T (REFERENCE §3)
            x = x.unsqueeze(0).expand(time_steps, *x.shape).reshape(-1, *x.shape[1:])
            x = self.lif(self.blocks(x))
            x = x.mean(dim=(2, 3)).view(time_steps, images.shape[0], -1).mean(0)
            return self.fc(x)

    return Net()
