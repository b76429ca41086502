"""`byol`: the symmetrized negative cosine by hand, lightly's predictor on the student only, cosine EMA."""

import pytest
import torch
import torch.nn.functional as F

from tests.methods.conftest import build, ema_moved, views

pytest.importorskip("lightly")


def test_symmetrized_negative_cosine_and_ema_target():
    method = build("byol", "byol.predictor_hidden=16", total_steps=10)
    assert method.student.predictor is not None and method.teacher.predictor is None
    m = method.schedule(4)["momentum"]
    assert method.schedule(0)["momentum"] == 0.99 and 0.99 < m < 1  # cosine towards 1
    before = [p.clone() for p in method.teacher.ema_parameters()]
    student = [p.detach().clone() for p in method.student.ema_parameters()]
    a, b = views()
    out, _ = method.loss_step([a, b], {"momentum": m})
    assert ema_moved(before, student, list(method.teacher.ema_parameters()), m)
    p_a, p_b = method.student(a, [b]).float().chunk(2)
    with torch.no_grad():
        t_a, t_b = method.teacher(a).float(), method.teacher(b).float()
    expected = -0.5 * (F.cosine_similarity(p_a, t_b).mean() + F.cosine_similarity(p_b, t_a).mean())
    assert out.loss_kind == "negative_cosine" and torch.allclose(out.loss, expected, atol=1e-5)
