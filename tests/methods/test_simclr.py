"""`simclr`: NT-Xent of the two strong views against a hand-computed value, per view pair; no teacher, no queue."""

import pytest
import torch
import torch.nn.functional as F

from edgessl.errors import EdgeSSLError
from tests.methods.conftest import build, views

pytest.importorskip("lightly")


def _by_hand_ntxent(a, b, t):
    z = F.normalize(torch.cat([a, b]), dim=1)
    sim = z @ z.T / t
    sim.fill_diagonal_(float("-inf"))
    n = len(a)
    pos = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return (torch.logsumexp(sim, dim=1) - sim[torch.arange(2 * n), pos]).mean()


@pytest.mark.parametrize("pairs", [1, 2])
def test_ntxent_matches_by_hand_within_each_view_pair(pairs):
    method = build("simclr", f"data.view_pairs={pairs}", "simclr.temperature=0.5")
    a, b = views(rows=4 * pairs)
    out, _ = method.loss_step([a, b], method.schedule(0))
    z = method.student(a, [b]).float()
    za, zb = z.chunk(2)
    expected = sum(_by_hand_ntxent(x, y, 0.5) for x, y in zip(za.chunk(pairs), zb.chunk(pairs))) / pairs
    assert out.loss_kind == "ntxent" and torch.allclose(out.loss, expected, atol=1e-5)
    assert not hasattr(method, "teacher") and method.second_view == "strong" and method.columns() == ()


def test_small_crops_are_refused():
    with pytest.raises(EdgeSSLError, match="method=simclr does not use multi-crop"):
        build("simclr", "data.small_crops=2")
