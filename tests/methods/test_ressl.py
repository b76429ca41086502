"""`ressl`: the relation loss against a hand-computed value, the InfoNCE warm-up and mixing, EMA and queue."""

import pytest
import torch
import torch.nn.functional as F

from edgessl.methods.ressl import loss_kind
from tests.methods.conftest import build, ema_moved, views


def _by_hand_relation(z_s, z_t, queue, tau_s, tau_t):
    p_t = torch.exp(z_t @ queue.T / tau_t)
    p_t = p_t / p_t.sum(1, keepdim=True)
    log_p_s = z_s @ queue.T / tau_s - torch.logsumexp(z_s @ queue.T / tau_s, dim=1, keepdim=True)
    return -(p_t * log_p_s).sum(1).mean()


def test_relation_loss_ema_and_queue():
    method = build("ressl", "ressl.queue_size=8", "ressl.batchnorm=plain")
    strong, weak = views()
    teacher_before = [p.clone() for p in method.teacher.ema_parameters()]
    student = [p.detach().clone() for p in method.student.ema_parameters()]
    queue = method.queue.embeddings.clone()
    out, head = method.loss_step([strong, weak], method.schedule(0))
    assert head is None and out.loss_kind == "relation"
    assert ema_moved(teacher_before, student, list(method.teacher.ema_parameters()), 0.99)
    z_s = F.normalize(method.student(strong).float(), dim=1)
    with torch.no_grad():
        z_t = F.normalize(method.teacher(weak).float(), dim=1)
    assert torch.allclose(out.pending["keys"], z_t, atol=1e-6)
    assert torch.allclose(out.loss, _by_hand_relation(z_s, z_t, queue, 0.1, 0.04), atol=1e-5)
    method.after_step(out)
    assert torch.equal(method.queue.embeddings[:4], z_t) and method.queue.ptr.item() == 4
    assert torch.equal(method.queue.embeddings[4:], queue[4:])
    assert set(out.metrics) == set(method.columns()) == {"momentum", "pt_entropy", "key_cosine"}


def test_infonce_warmup_then_the_mixture():
    method = build("ressl", "ressl.infonce_warmup_epochs=1", "ressl.infonce_weight=0.25", "ressl.queue_size=8",
                   steps_per_epoch=3)
    assert [method.schedule(s)["infonce_weight"] for s in (0, 2, 3)] == [1.0, 1.0, 0.25]
    assert [loss_kind(w) for w in (0, 1, 0.25)] == ["relation", "infonce", "infonce+relation"]
    out, _ = method.loss_step(views(), method.schedule(3))
    assert out.loss_kind == "infonce+relation" and out.loss.requires_grad


def test_linear_schedule_grows_the_relation_share_and_infonce_has_its_own_temperature(monkeypatch):
    import edgessl.methods.ressl as ressl_mod

    method = build("ressl", "ressl.infonce_warmup_epochs=1", "ressl.infonce_weight=0.2", "ressl.queue_size=8",
                   "ressl.infonce_weight_schedule=linear", "ressl.infonce_tau=0.3", steps_per_epoch=2, total_steps=6)
    weights = [method.schedule(s)["infonce_weight"] for s in range(6)]
    assert weights[:2] == [1.0, 1.0] and weights[-1] == pytest.approx(0.2)
    assert all(a > b for a, b in zip(weights[1:], weights[2:]))  # falls every step after the warm-up
    taus = []
    monkeypatch.setattr(ressl_mod, "infonce_loss", lambda z, t, q, tau: taus.append(tau) or z.sum() * 0)
    method.loss_step(views(), method.schedule(0))
    assert taus and set(taus) == {0.3}
    assert "handing over linearly" in method.describe(method.options)
