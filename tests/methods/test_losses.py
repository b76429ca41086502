"""The relation loss equals the spec's formula, computed independently in float64 numpy."""

import math

import numpy as np
import torch
import torch.nn.functional as F

from edgessl.methods.losses import entropy, infonce_loss, relation_loss


def _fixed(seed: int, *shape: int) -> torch.Tensor:
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_relation_loss_matches_spec_formula():
    z_s, z_t, queue = _fixed(0, 4, 8), _fixed(1, 4, 8), _fixed(2, 16, 8)
    tau_s, tau_t = 0.1, 0.04
    loss, p_t = relation_loss(z_s, z_t, queue, tau_s, tau_t)

    s, t, q = (x.double().numpy() for x in (z_s, z_t, queue))
    expected = 0.0
    for i in range(4):
        lt = t[i] @ q.T / tau_t
        pt = np.exp(lt - lt.max()) / np.exp(lt - lt.max()).sum()
        ls = s[i] @ q.T / tau_s
        log_ps = ls - (ls.max() + np.log(np.exp(ls - ls.max()).sum()))
        expected += -(pt * log_ps).sum()
    expected /= 4
    assert math.isclose(loss.item(), expected, rel_tol=1e-5)
    assert torch.allclose(p_t.sum(1), torch.ones(4))


def test_relation_loss_gradient_flows_to_student_only():
    z_s = _fixed(0, 4, 8).requires_grad_()
    z_t = _fixed(1, 4, 8).requires_grad_()
    loss, _ = relation_loss(z_s, z_t, _fixed(2, 16, 8), 0.1, 0.04)
    loss.backward()
    assert z_s.grad is not None and z_s.grad.abs().sum() > 0
    assert z_t.grad is None


def test_identical_views_minimise_to_teacher_entropy_when_temperatures_equal():
    z, queue = _fixed(0, 4, 8), _fixed(2, 16, 8)
    loss, p_t = relation_loss(z, z, queue, 0.1, 0.1)
    assert math.isclose(loss.item(), entropy(p_t).item(), rel_tol=1e-5)  # CE(p, p) = H(p)


def test_infonce_positive_first():
    z_s, queue = _fixed(0, 4, 8), _fixed(2, 16, 8)
    aligned = infonce_loss(z_s, z_s, queue, 0.1)
    random_pos = infonce_loss(z_s, _fixed(3, 4, 8), queue, 0.1)
    assert aligned < random_pos
    logits = torch.cat([(z_s * z_s).sum(1, keepdim=True), z_s @ queue.T], 1) / 0.1
    assert torch.allclose(aligned, F.cross_entropy(logits, torch.zeros(4, dtype=torch.long)))


def test_entropy_of_uniform_is_log_k():
    assert math.isclose(entropy(torch.full((3, 64), 1 / 64)).item(), math.log(64), rel_tol=1e-6)


def test_losses_stay_float32_under_autocast():
    gen = torch.Generator().manual_seed(0)
    z_s, z_t, queue = (F.normalize(torch.randn(n, 32, generator=gen), dim=1) for n in (8, 8, 64))
    exact, p_exact = relation_loss(z_s, z_t, queue, 0.1, 0.04)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, p_t = relation_loss(z_s, z_t, queue, 0.1, 0.04)
        nce = infonce_loss(z_s, z_t, queue, 0.1)
        undone, _ = relation_loss.__wrapped__(z_s, z_t, queue, 0.1, 0.04)  # `.float()` alone, as before
    assert loss.dtype == p_t.dtype == nce.dtype == torch.float32
    assert torch.equal(loss, exact) and torch.equal(p_t, p_exact)
    assert torch.equal(nce, infonce_loss(z_s, z_t, queue, 0.1))
    assert not torch.equal(undone, exact)  # autocast had cast the matmuls back to bf16
