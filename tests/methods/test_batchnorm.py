"""Split-BN equals BN applied to each interleaved group (in either layout); the shuffled teacher forward is
order-preserving, and across ranks it exchanges only each rank's slice."""

import pytest
import torch
from torch import nn
from timm.layers import BatchNormAct2d

from edgessl.methods.batchnorm import exchange_plan, shuffled_forward, use_split_bn, usable_splits


def test_split_bn_normalizes_each_group_separately():
    torch.manual_seed(0)
    x = torch.randn(8, 3, 4, 4) * torch.arange(1, 9).view(8, 1, 1, 1)
    bn = nn.BatchNorm2d(3)
    ref = nn.BatchNorm2d(3)
    use_split_bn(bn, 2)
    out = bn(x)
    for r in range(2):  # group r = samples r, r+2, r+4, ...
        ref_out = nn.BatchNorm2d(3)(x[r::2])
        assert torch.allclose(out[r::2], ref_out, atol=1e-5)
    # running stats: the mean over the groups' updates
    means = [x[r::2].mean((0, 2, 3)) for r in range(2)]
    assert torch.allclose(bn.running_mean, 0.1 * (means[0] + means[1]) / 2, atol=1e-6)
    ref.eval(), bn.eval()
    assert torch.allclose(bn(x), nn.functional.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias))


def test_split_bn_keeps_timm_activation():
    bn = BatchNormAct2d(3, act_layer=nn.ReLU)
    use_split_bn(bn, 4)
    assert (bn(torch.randn(8, 3, 2, 2)) >= 0).all()


def test_shuffled_forward_returns_original_order():
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Flatten())
    x = torch.randn(6, 3, 2, 2)
    net.eval()
    assert torch.allclose(shuffled_forward(net, x, across_ranks=False), net(x), atol=1e-6)


def test_usable_splits_divides_batch():
    assert usable_splits(128, 8) == 8
    assert usable_splits(12, 8) == 6


def _reference_split_bn(x: torch.Tensor, s: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The former implementation: BN on the batch reshaped to (n / s, c * s, h, w) (two NCHW copies)."""
    n, c, h, w = x.shape
    rm, rv = torch.zeros(c * s), torch.ones(c * s)
    out = nn.functional.batch_norm(x.reshape(n // s, c * s, h, w), rm, rv, None, None, True, 0.1, 1e-5)
    return out.reshape(n, c, h, w), rm.view(s, c).mean(0), rv.view(s, c).mean(0)


@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format])
def test_split_bn_keeps_the_layout_and_matches_the_reshaped_batch_norm(layout):
    x = (torch.randn(8, 3, 4, 5) * 3 + 1).contiguous(memory_format=layout)
    bn = nn.BatchNorm2d(3)
    use_split_bn(bn, 4)
    out = bn(x)
    assert out.is_contiguous(memory_format=layout)
    ref, rm, rv = _reference_split_bn(x.contiguous(), 4)
    assert torch.allclose(out, ref, atol=1e-5)
    assert torch.allclose(bn.running_mean, rm, atol=1e-6) and torch.allclose(bn.running_var, rv, atol=1e-5)


def _simulate_exchange(x_global: torch.Tensor, perm: torch.Tensor, world: int) -> list[torch.Tensor]:
    """What each rank's teacher receives under `exchange_plan`, with the all_to_all done by hand."""
    local = len(x_global) // world
    plans = [exchange_plan(perm, local, r, world) for r in range(world)]
    outboxes = [x_global[r * local:(r + 1) * local][p.send].split(p.send_counts) for r, p in enumerate(plans)]
    received = [torch.cat([outboxes[src][dst] for src in range(world)]) for dst in range(world)]
    assert [len(received[r]) for r in range(world)] == [sum(p.recv_counts) for p in plans] == [local] * world
    return [received[r][p.unsort] for r, p in enumerate(plans)]


def test_exchange_plan_gives_each_rank_its_slice_of_the_permuted_batch():
    world, local = 3, 5
    x_global = torch.arange(world * local).float()[:, None]
    perm = torch.randperm(world * local, generator=torch.Generator().manual_seed(0))
    slices = _simulate_exchange(x_global, perm, world)
    for r in range(world):
        assert torch.equal(slices[r], x_global[perm[r * local:(r + 1) * local]])


def _gathered_shuffle(teacher: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The former shuffle-BN: all_gather the global batch to every rank, run a slice, all_gather the outputs
    (its permutation was broadcast from rank 0; here every rank draws the same one from seed 7)."""
    from edgessl import distributed as D

    local, r = x.shape[0], D.rank()
    x_all = D.all_gather_nograd(x)
    perm = torch.randperm(x_all.shape[0], generator=torch.Generator().manual_seed(7))  # the same on each rank
    out_all = D.all_gather_nograd(teacher(x_all[perm[r * local:(r + 1) * local]]))
    return out_all[torch.argsort(perm)][r * local:(r + 1) * local]


def _shuffle_worker(rank: int, world: int) -> dict:
    import copy

    from edgessl import distributed as D

    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Flatten())
    x = torch.randn(world * 6, 3, 2, 2, generator=torch.Generator().manual_seed(1))[rank * 6:(rank + 1) * 6]
    reference = copy.deepcopy(teacher)
    expected = _gathered_shuffle(reference, x)
    moved, exchange, gather = [], D.all_to_all, D.all_gather_nograd

    def counting(rows: torch.Tensor, send: list[int], recv: list[int]) -> torch.Tensor:
        moved.append((len(rows), sum(recv)))
        return exchange(rows, send, recv)

    D.all_to_all, D.all_gather_nograd = counting, None  # the exchange must not gather the global batch
    D.seed_shared(7)  # the permutation the reference drew
    keys = shuffled_forward(teacher, x, across_ranks=True)
    D.all_to_all, D.all_gather_nograd = exchange, gather
    return {"equal": torch.equal(keys, expected), "moved": moved}


@pytest.mark.slow
def test_shuffle_bn_exchange_moves_only_each_ranks_slice_and_gives_todays_keys():
    from tests.gloo import run_gloo

    for rank in run_gloo(_shuffle_worker, 2):
        assert rank["equal"]
        assert rank["moved"] == [(6, 6), (6, 6)]  # images out, outputs back: one local batch each way
