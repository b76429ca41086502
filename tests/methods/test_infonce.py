"""`infonce`: InfoNCE against a hand-computed value, cross-pair targets, EMA (cosine schedule) and queue."""

import pytest
import torch
import torch.nn.functional as F

from edgessl.errors import EdgeSSLError
from tests.methods.conftest import build, ema_moved, views


def _by_hand_infonce(z_s, key, queue, tau):
    pos = (z_s * key).sum(1, keepdim=True)
    logits = torch.cat([pos, z_s @ queue.T], dim=1) / tau
    return (torch.logsumexp(logits, dim=1) - logits[:, 0]).mean()


def test_infonce_loss_matches_by_hand_and_the_queue_takes_the_keys():
    method = build("infonce", "infonce.queue_size=8", "infonce.batchnorm=plain", "infonce.tau=0.3")
    strong, weak = views()
    queue = method.queue.embeddings.clone()
    out, _ = method.loss_step([strong, weak], method.schedule(0))
    z_s = F.normalize(method.student(strong).float(), dim=1)
    key = out.pending["keys"]
    assert out.loss_kind == "infonce"
    assert torch.allclose(out.loss, _by_hand_infonce(z_s, key, queue, 0.3), atol=1e-5)
    method.after_step(out)
    assert torch.equal(method.queue.embeddings[:4], key) and method.queue.ptr.item() == 4


def test_cross_pair_targets_average_own_and_other_pairs_keys():
    method = build("infonce", "data.view_pairs=2", "infonce.pair_targets=all", "infonce.queue_size=8",
                   "infonce.batchnorm=plain")
    strong, weak = views(rows=8)  # 2 draws x 4 images, draw-major
    queue = method.queue.embeddings.clone()
    out, _ = method.loss_step([strong, weak], method.schedule(0))
    z_s = F.normalize(method.student(strong).float(), dim=1)
    keys = out.pending["keys"]
    own, cross = _by_hand_infonce(z_s, keys, queue, 0.2), _by_hand_infonce(z_s, keys.roll(4, 0), queue, 0.2)
    assert torch.allclose(out.loss, (own + cross) / 2, atol=1e-5)


def test_cosine_ema_schedule_moves_the_teacher_by_the_scheduled_momentum():
    method = build("infonce", "infonce.queue_size=8", "infonce.ema_schedule=cosine", "infonce.ema_momentum=0.9",
                   total_steps=10)
    m = method.schedule(5)["momentum"]
    assert 0.9 < m < 1 and method.schedule(0)["momentum"] == 0.9
    before = [p.clone() for p in method.teacher.ema_parameters()]
    student = [p.detach().clone() for p in method.student.ema_parameters()]
    out, _ = method.loss_step(views(), {"momentum": m})
    assert ema_moved(before, student, list(method.teacher.ema_parameters()), m)
    assert out.metrics["momentum"].item() == torch.tensor(m).item()


def _by_hand_ntxent(a, b, tau):
    """SimCLR's NT-Xent over the 2B rows [a; b] (a[i], b[i] are two views of image i)."""
    z = torch.cat([a, b])
    logits = (z @ z.T / tau).fill_diagonal_(float("-inf"))
    partner = torch.arange(len(z)).roll(len(a))
    return F.cross_entropy(logits, partner)


def test_ntxent_weight_adds_simclr_loss_among_the_students_strong_views():
    common = ("data.view_pairs=2", "infonce.pair_targets=all", "infonce.queue_size=8", "infonce.batchnorm=plain")
    plain, mixed = build("infonce", *common), build("infonce", *common, "infonce.ntxent_weight=0.5",
                                                     "infonce.ntxent_tau=0.3")
    strong, weak = views(rows=8)  # 2 draws x 4 images, draw-major
    base, _ = plain.loss_step([strong, weak], plain.schedule(0))
    out, _ = mixed.loss_step([strong, weak], mixed.schedule(0))
    z_s = F.normalize(mixed.student(strong).float(), dim=1)
    ntxent = _by_hand_ntxent(z_s[:4], z_s[4:], 0.3)
    assert out.loss_kind == "infonce+ntxent" and "loss_ntxent" in mixed.columns()
    assert torch.allclose(out.metrics["loss_ntxent"], ntxent, atol=1e-5)
    assert torch.allclose(out.loss, base.loss + 0.5 * ntxent, atol=1e-5)


def test_ntxent_weight_without_two_view_pairs_is_a_one_line_error():
    with pytest.raises(EdgeSSLError, match="infonce.ntxent_weight=0.5 needs two strong views.*data.view_pairs=2"):
        build("infonce", "infonce.ntxent_weight=0.5")
