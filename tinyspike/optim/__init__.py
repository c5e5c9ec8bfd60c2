"""Optimizers, learning-rate schedules and gradient clipping.

    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    schedule = optim.MultiStepLR(opt, milestones=[40, 60, 80], gamma=0.2)   # stepped per epoch
    for epoch in range(100):
        for x, y in loader:
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optim.clip_grad_norm_(model.parameters(), 5.0)                   # optional
            opt.step()
        schedule.step()
"""

from tinyspike.optim.adam import Adam, AdamW
from tinyspike.optim.clip import clip_grad_norm_
from tinyspike.optim.optimizer import Optimizer
from tinyspike.optim.schedules import CosineLR, LRScheduler, MultiStepLR
from tinyspike.optim.sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "LRScheduler", "MultiStepLR", "CosineLR", "clip_grad_norm_"]
