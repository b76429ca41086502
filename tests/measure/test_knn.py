"""Weighted kNN: perfect on separated clusters, exact on hand-checkable cases, bounded k."""

import pytest
import torch

from edgessl.errors import EdgeSSLError
from edgessl.measure.knn import knn_classify


def _clusters(n_per_class: int, num_classes: int = 4, dim: int = 16, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    centers = torch.eye(dim)[:num_classes] * 10
    labels = torch.arange(num_classes).repeat_interleave(n_per_class)
    return centers[labels] + 0.1 * torch.randn(len(labels), dim, generator=gen), labels


def test_well_separated_clusters_are_classified_perfectly():
    train, train_y = _clusters(50, seed=0)
    test, test_y = _clusters(20, seed=1)
    res = knn_classify(train, train_y, test, test_y, k=20, chunk=7)  # chunk smaller than the test set
    assert res["top1"] == 100.0 and res["top5"] == 100.0
    assert res["num_test"] == 80 and res["k"] == 20


def test_k1_is_the_nearest_neighbour_by_cosine():
    # unit vectors at angles 0, 90, 180 deg with labels 0, 1, 2; queries close to each, one query between 0 and 90
    train = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    train_y = torch.tensor([0, 1, 2])
    test = torch.tensor([[5.0, 0.1], [0.2, 3.0], [-2.0, 0.3], [1.0, 0.9]])  # scale must not matter (cosine)
    test_y = torch.tensor([0, 1, 2, 1])  # the last is nearer to label 0, so it is wrong
    res = knn_classify(train, train_y, test, test_y, k=1)
    assert res["top1"] == pytest.approx(75.0)
    assert res["top5"] == 100.0  # only 3 classes: top-5 contains every class


def test_weights_follow_exp_sim_over_t():
    # two neighbours of class 0 at cosine 0.6 vs one of class 1 at cosine 0.9 (k=3):
    # score0 = 2 exp(6), score1 = exp(9) at T=0.1 -> class 1; at T=10 the weights are ~equal -> class 0
    def unit(c):
        return torch.tensor([c, (1 - c * c) ** 0.5])
    train = torch.stack([unit(0.6), unit(0.6), unit(0.9)])
    train_y = torch.tensor([0, 0, 1])
    query = torch.tensor([[1.0, 0.0]])
    assert knn_classify(train, train_y, query, torch.tensor([1]), k=3, temperature=0.1)["top1"] == 100.0
    assert knn_classify(train, train_y, query, torch.tensor([0]), k=3, temperature=10.0)["top1"] == 100.0


def test_k_is_clipped_to_the_bank_and_num_classes_can_be_given():
    train, train_y = _clusters(2, num_classes=3)
    res = knn_classify(train, train_y, train, train_y, k=200, num_classes=10)
    assert res["k"] == 6 and res["top1"] == 100.0


def test_empty_inputs_are_a_clear_error():
    with pytest.raises(EdgeSSLError, match="empty"):
        knn_classify(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), torch.ones(2, 4), torch.zeros(2))


def test_unlabelled_items_are_refused():
    feats = torch.eye(3)
    with pytest.raises(EdgeSSLError, match="unlabelled"):
        knn_classify(feats, torch.tensor([0, -1, 1]), feats, torch.tensor([0, 1, 1]))


def _sharded_knn_worker(rank: int, world: int, feats: list[torch.Tensor], run_dir: str) -> dict:
    """This rank's kNN on its shard of a bank (k larger than a shard) and the trainer's monitor."""
    from edgessl import distributed as D
    from edgessl.engine.trainer import Trainer
    from tests.tiny_run import tiny

    train, train_y, test, test_y = feats
    mine, queries = D.shard(len(train)), D.shard(len(test))
    gathered = D.all_gather_uneven(test[queries]), D.all_gather_uneven(test_y[queries])
    assert torch.equal(gathered[0], test)  # the ranks' shards in rank order are the whole split
    sharded = knn_classify(train[mine], train_y[mine], *gathered, k=25, chunk=6, sharded=True)
    monitor = Trainer(tiny(run_dir, "knn.bank_samples=40")).knn()
    return {"sharded": sharded, "monitor": monitor}


@pytest.mark.slow
def test_distributed_knn_equals_single_process_knn(tmp_path):
    from edgessl.engine.trainer import Trainer
    from tests.gloo import run_gloo
    from tests.tiny_run import tiny

    gen = torch.Generator().manual_seed(3)
    feats = [torch.randn(37, 8, generator=gen), torch.randint(0, 5, (37,), generator=gen),
             torch.randn(23, 8, generator=gen), torch.randint(0, 5, (23,), generator=gen)]
    ranks = run_gloo(_sharded_knn_worker, 2, feats, str(tmp_path / "dist"))
    single = knn_classify(*feats, k=25, chunk=6)
    assert 0 < single["top1"] < 100  # not a trivial case
    assert ranks[0]["sharded"] == ranks[1]["sharded"] == single
    monitor = Trainer(tiny(tmp_path / "single", "knn.bank_samples=40")).knn()
    assert ranks[0]["monitor"] == ranks[1]["monitor"] == monitor
    assert monitor["num_train"] == 40 and monitor["num_test"] == 32


def test_knn_top1_runs_loaders_features_knn_for_a_module_or_a_callable():
    from torch import nn

    from edgessl.measure.knn import knn_top1

    train, train_y = _clusters(10, seed=0)
    test, test_y = _clusters(5, seed=1)
    loaders = ([(train[:20], train_y[:20]), (train[20:], train_y[20:])], [(test, test_y)])
    model = nn.Sequential(nn.Linear(16, 16), nn.BatchNorm1d(16)).train()
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(16))
        model[0].bias.zero_()
    result = knn_top1(model, loaders, k=5)
    assert model.training  # mode restored; features were taken in eval mode
    expected = knn_classify(model.eval()(train).detach(), train_y, model(test).detach(), test_y, k=5)
    assert result.scores == expected and result.top1 == 100.0
    assert torch.allclose(result.train[0], model(train).detach()) and torch.equal(result.test[1], test_y)
    scaled = knn_top1(lambda x: 3 * x, loaders, k=5)  # a runtime's runner: any callable
    assert scaled.top1 == 100.0 and torch.allclose(scaled.test[0], 3 * test)
