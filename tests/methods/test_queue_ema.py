"""FIFO queue and EMA behaviour."""

import torch
from torch import nn

from edgessl.methods.ema import ema_momentum, ema_update
from edgessl.methods.queue import EmbeddingQueue


def test_queue_starts_normalized_and_is_fifo():
    q = EmbeddingQueue(6, 4)
    assert torch.allclose(q.embeddings.norm(dim=1), torch.ones(6))
    a, b, c, d = (torch.full((2, 4), float(i)) for i in range(1, 5))
    for x in (a, b, c):
        q.push(x)
    assert q.ptr.item() == 0
    assert torch.equal(q.embeddings, torch.cat([a, b, c]))
    q.push(d)  # overwrites the oldest (a)
    assert torch.equal(q.embeddings, torch.cat([d, b, c]))
    assert q.ptr.item() == 2


def test_queue_in_state_dict():
    q = EmbeddingQueue(4, 3)
    q.push(torch.ones(2, 3))
    q2 = EmbeddingQueue(4, 3)
    q2.load_state_dict(q.state_dict())
    assert torch.equal(q2.embeddings, q.embeddings) and q2.ptr.item() == 2


def test_ema_update_formula_and_buffers_untouched():
    torch.manual_seed(0)
    student, teacher = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)), nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    student[1].running_mean.fill_(5.0)
    before = [p.clone() for p in teacher.parameters()]
    ema_update(list(teacher.parameters()), list(student.parameters()), 0.9)
    for t, t0, s in zip(teacher.parameters(), before, student.parameters()):
        assert torch.allclose(t, 0.9 * t0 + 0.1 * s)
    assert torch.equal(teacher[1].running_mean, torch.zeros(3))


def test_ema_momentum_schedules():
    assert ema_momentum(0.99, "constant", 50, 100) == 0.99
    assert ema_momentum(0.99, "cosine", 0, 100) == 0.99
    assert abs(ema_momentum(0.99, "cosine", 100, 100) - 1.0) < 1e-12
    assert 0.99 < ema_momentum(0.99, "cosine", 50, 100) < 1.0
