"""Feature extraction: normalized float32 features and int64 labels on CPU, model mode restored."""

import torch
from torch import nn

from edgessl.measure.features import extract_features


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm1d(6)
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        assert not self.training, "features must be extracted in eval mode"
        return self.fc(self.bn(x.flatten(1)))


def _loader():
    gen = torch.Generator().manual_seed(0)
    return [(torch.randn(5, 6, generator=gen), torch.arange(5) % 3) for _ in range(3)]


def test_normalized_features_and_labels():
    model = _Net().train()
    feats, labels = extract_features(model, _loader(), "cpu", progress=False)
    assert feats.shape == (15, 4) and feats.dtype == torch.float32 and feats.device.type == "cpu"
    assert torch.allclose(feats.norm(dim=1), torch.ones(15), atol=1e-5)
    assert labels.dtype == torch.int64 and labels.tolist() == [0, 1, 2, 0, 1] * 3
    assert model.training  # restored


def test_raw_features_and_bf16_autocast():
    model = _Net().eval()
    raw, _ = extract_features(model, _loader(), "cpu", progress=False, normalize=False)
    with torch.no_grad():
        expected = model(torch.cat([x for x, _ in _loader()]))
    assert torch.allclose(raw, expected, atol=1e-5)
    low, _ = extract_features(model, _loader(), "cpu", amp="bf16", progress=False, normalize=False)
    assert low.dtype == torch.float32 and torch.allclose(low, expected, atol=0.1)
    assert not model.training
