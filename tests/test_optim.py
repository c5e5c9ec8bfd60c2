"""Optimizers against hand-computed updates, schedules at given epochs, gradient clipping, state dicts."""

import math

import numpy as np
import pytest

from tinyspike import nn, optim


def param(values):
    return nn.Parameter(np.array(values, dtype=np.float64))


def set_grad(p, values):
    p.grad = np.array(values, dtype=np.float64)


# ---- SGD ----------------------------------------------------------------------------------------


def test_sgd_plain_step_is_p_minus_lr_grad():
    p = param([1.0, -2.0])
    opt = optim.SGD([p], lr=0.1)
    set_grad(p, [0.5, -1.0])
    opt.step()
    np.testing.assert_allclose(p.data, [0.95, -1.9])


def test_sgd_momentum_and_weight_decay_by_hand():
    p = param([1.0])
    opt = optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.1)
    set_grad(p, [1.0])
    opt.step()  # g = 1 + 0.1·1 = 1.1; b = 1.1; p = 1 - 0.11 = 0.89
    np.testing.assert_allclose(p.data, [0.89])
    set_grad(p, [1.0])
    opt.step()  # g = 1 + 0.089 = 1.089; b = 0.99 + 1.089 = 2.079; p = 0.89 - 0.2079 = 0.6821
    np.testing.assert_allclose(p.data, [0.6821])


def test_sgd_nesterov_by_hand():
    p = param([0.0])
    opt = optim.SGD([p], lr=0.5, momentum=0.5, nesterov=True)
    set_grad(p, [2.0])
    opt.step()  # b = 2; d = 2 + 0.5·2 = 3; p = -1.5
    np.testing.assert_allclose(p.data, [-1.5])
    set_grad(p, [1.0])
    opt.step()  # b = 1 + 1 = 2; d = 1 + 1 = 2; p = -2.5
    np.testing.assert_allclose(p.data, [-2.5])


def test_sgd_skips_parameters_without_gradient_and_zero_grad_clears():
    p, q = param([1.0]), param([1.0])
    opt = optim.SGD([p, q], lr=1.0)
    set_grad(p, [1.0])
    opt.step()
    assert p.data[0] == 0.0 and q.data[0] == 1.0
    opt.zero_grad()
    assert p.grad is None


def test_sgd_rejects_bad_hyperparameters():
    p = param([1.0])
    with pytest.raises(ValueError, match="lr"):
        optim.SGD([p], lr=-1)
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="momentum"):
        optim.SGD([p], lr=0.1, momentum=1.5)
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="unknown option"):
        optim.SGD([{"params": [p], "betas": (0.9, 0.9)}], lr=0.1)


def test_parameter_groups_have_their_own_lr():
    p, q = param([1.0]), param([1.0])
    opt = optim.SGD([{"params": [p]}, {"params": [q], "lr": 0.5}], lr=0.1)
    set_grad(p, [1.0])
    set_grad(q, [1.0])
    opt.step()
    np.testing.assert_allclose([p.data[0], q.data[0]], [0.9, 0.5])


# ---- Adam / AdamW -------------------------------------------------------------------------------


def test_adam_first_step_moves_by_lr_times_sign():
    # step 1: m̂ = g, v̂ = g², update = lr·g/(|g| + eps) ≈ lr·sign(g)
    p = param([1.0, 1.0])
    opt = optim.Adam([p], lr=0.01)
    set_grad(p, [3.0, -0.5])
    opt.step()
    np.testing.assert_allclose(p.data, [1.0 - 0.01 * 3 / (3 + 1e-8), 1.0 + 0.01 * 0.5 / (0.5 + 1e-8)])


def test_adam_two_steps_with_l2_weight_decay_by_hand():
    lr, b1, b2, eps, wd = 0.1, 0.9, 0.999, 1e-8, 0.5
    p = param([2.0])
    opt = optim.Adam([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    value, m, v = 2.0, 0.0, 0.0
    for t, g in enumerate([1.0, -3.0], start=1):
        set_grad(p, [g])
        opt.step()
        g = g + wd * value
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        value -= lr / (1 - b1**t) * m / (math.sqrt(v) / math.sqrt(1 - b2**t) + eps)
        np.testing.assert_allclose(p.data, [value], rtol=1e-12)


def test_adamw_decays_weights_decoupled():
    p = param([2.0])
    opt = optim.AdamW([p], lr=0.1, weight_decay=0.5)
    set_grad(p, [4.0])
    opt.step()  # p = 2·(1 - 0.05) - 0.1·4/(4 + 1e-8)
    np.testing.assert_allclose(p.data, [2.0 * 0.95 - 0.1 * 4 / (4 + 1e-8)])


def test_optimizer_state_dict_round_trip_continues_identically(tmp_path):
    def make():
        p = param([1.0, 2.0])
        return p, optim.Adam([p], lr=0.1, weight_decay=0.01)

    p1, opt1 = make()
    for g in ([1.0, -1.0], [0.5, 2.0]):
        set_grad(p1, g)
        opt1.step()
    state = opt1.state_dict()
    assert all(isinstance(v, (int, float, bool, np.ndarray)) for v in state.values()), state
    model = nn.Module()
    model.w = p1
    nn.save_checkpoint(tmp_path / "ck.npz", model, optimizer=state)
    loaded = nn.load_checkpoint(tmp_path / "ck.npz")

    p2, opt2 = make()
    p2.data[...] = p1.data
    opt2.load_state_dict(loaded["optimizer"])
    for p, opt in ((p1, opt1), (p2, opt2)):
        set_grad(p, [-2.0, 0.25])
        opt.step()
    np.testing.assert_array_equal(p1.data, p2.data)
    assert opt2.param_groups[0]["betas"] == (0.9, 0.999)


def test_sgd_state_dict_has_momentum_buffers_and_rejects_mismatch():
    p = param([1.0, 2.0])
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    set_grad(p, [1.0, 1.0])
    opt.step()
    state = opt.state_dict()
    assert set(state) >= {"group0.lr", "group0.momentum", "group0.num_params", "param0.momentum_buffer"}
    other = optim.SGD([param([1.0, 2.0, 3.0])], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="param0.momentum_buffer"):
        other.load_state_dict(state)


# ---- schedules ----------------------------------------------------------------------------------


def sgd(lr=0.1):
    return optim.SGD([param([0.0])], lr=lr)


def test_multistep_paper_schedule_per_epoch():
    opt = sgd()
    schedule = optim.MultiStepLR(opt, milestones=[40, 60, 80], gamma=0.2)
    expected = {0: 0.1, 39: 0.1, 40: 0.02, 59: 0.02, 60: 0.004, 79: 0.004, 80: 0.0008, 99: 0.0008}
    seen = {0: opt.param_groups[0]["lr"]}
    for epoch in range(1, 100):
        schedule.step()
        seen[epoch] = opt.param_groups[0]["lr"]
    for epoch, lr in expected.items():
        assert seen[epoch] == pytest.approx(lr), epoch


def test_multistep_per_iteration_drops_exactly_at_the_milestone_epoch():
    opt = sgd()
    schedule = optim.MultiStepLR(opt, milestones=[2], gamma=0.5, steps_per_epoch=10)
    for _ in range(19):
        schedule.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1) and schedule.epoch == pytest.approx(1.9)
    schedule.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)


def test_cosine_with_warmup_values():
    opt = sgd(0.1)
    schedule = optim.CosineLR(opt, total_epochs=100, warmup_epochs=5, warmup_start_factor=0.1)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01)  # set at construction: e = 0
    assert schedule.lr_at(2.5) == [pytest.approx(0.1 * (0.1 + 0.9 * 0.5))]
    assert schedule.lr_at(5) == [pytest.approx(0.1)]
    assert schedule.lr_at(52.5) == [pytest.approx(0.05)]
    assert schedule.lr_at(100) == [pytest.approx(0.0)]
    assert schedule.lr_at(120) == [pytest.approx(0.0)]


def test_cosine_without_warmup_matches_pytorch_formula_and_min_lr():
    opt = sgd(0.1)
    schedule = optim.CosineLR(opt, total_epochs=100, min_lr=0.001, steps_per_epoch=4)
    for _ in range(100):  # 25 epochs of 4 iterations
        schedule.step()
    expected = 0.001 + (0.1 - 0.001) * (1 + math.cos(math.pi * 25 / 100)) / 2
    assert opt.param_groups[0]["lr"] == pytest.approx(expected)


def test_schedule_state_dict_resumes():
    opt = sgd()
    schedule = optim.MultiStepLR(opt, milestones=[3], gamma=0.1)
    for _ in range(4):
        schedule.step()
    state = schedule.state_dict()
    opt2 = sgd()
    schedule2 = optim.MultiStepLR(opt2, milestones=[3], gamma=0.1)
    schedule2.load_state_dict(state)
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.01) and schedule2.last_step == 4


def test_schedule_argument_errors():
    with pytest.raises(ValueError, match="warmup_epochs"):
        optim.CosineLR(sgd(), total_epochs=5, warmup_epochs=5)
    with pytest.raises(ValueError, match="milestones"):
        optim.MultiStepLR(sgd(), milestones=[60, 40])
    with pytest.raises(ValueError, match="steps_per_epoch"):
        optim.MultiStepLR(sgd(), milestones=[1], steps_per_epoch=0)


# ---- gradient clipping --------------------------------------------------------------------------


def test_clip_grad_norm_scales_to_max_norm_and_returns_the_norm_before():
    p, q, r = param([0.0, 0.0]), param([0.0]), param([5.0])
    set_grad(p, [3.0, 4.0])
    set_grad(q, [12.0])  # joint 2-norm 13; r has no gradient and is skipped
    total = optim.clip_grad_norm_([p, q, r], max_norm=6.5)
    assert total == pytest.approx(13.0)
    scale = 6.5 / (13.0 + 1e-6)
    np.testing.assert_allclose(p.grad, [3 * scale, 4 * scale])
    np.testing.assert_allclose(q.grad, [12 * scale])


def test_clip_grad_norm_leaves_small_gradients_and_handles_inf_norm():
    p = param([0.0, 0.0])
    set_grad(p, [3.0, -4.0])
    assert optim.clip_grad_norm_([p], max_norm=10.0) == pytest.approx(5.0)
    np.testing.assert_array_equal(p.grad, [3.0, -4.0])
    assert optim.clip_grad_norm_([p], max_norm=2.0, norm_type=math.inf) == pytest.approx(4.0)
    np.testing.assert_allclose(p.grad, [1.5, -2.0], rtol=1e-6)
    set_grad(p, [np.nan, 1.0])
    with pytest.raises(FloatingPointError):
        optim.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
