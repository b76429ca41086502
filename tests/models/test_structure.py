"""The pruned structure is plain numbers, rebuilds the exact model from the registry arch, and refuses another
architecture in one line."""

from __future__ import annotations

import json

import pytest
import torch

from edgessl.errors import EdgeSSLError
from edgessl.models import build_backbone
from edgessl.pruning.prune import prune_to_target
from edgessl.models.structure import apply_structure, capture


@pytest.fixture(scope="module")
def pruned() -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_backbone("mobilenetv3_small_100", stem_stride=1)
    prune_to_target(model, 16, macs=0.5, log=lambda line: None)
    return model.eval()


def test_capture_is_plain_data_and_rebuilds_the_same_model(pruned):
    structure = capture(pruned)
    assert json.loads(json.dumps(structure)) == structure  # ints, strings and dicts only: loads with weights_only
    rebuilt = apply_structure(build_backbone("mobilenetv3_small_100", stem_stride=1), structure)
    rebuilt.load_state_dict(pruned.state_dict())  # strict: every name and shape matches
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(x), pruned(x))


@pytest.mark.parametrize("arch, mangle, words", [
    ("efficientnet_b0", lambda s: s, "pruned from another architecture"),
    ("mobilenetv3_small_100", lambda s: {**s, "format": 99}, "not format 1"),
])
def test_bad_structures_are_one_line_errors(pruned, arch, mangle, words):
    with pytest.raises(EdgeSSLError, match=words) as err:
        apply_structure(build_backbone(arch, stem_stride=1), mangle(capture(pruned)), arch)
    assert "\n" not in str(err.value)
