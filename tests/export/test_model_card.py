"""Model cards: every section present, missing keys tolerated, recipe hash stable."""

from edgessl.export.model_card import recipe_hash, runtime_versions, write_model_card


def test_model_card_has_every_section(tmp_path):
    info = {"name": "mnv3s-cifar10", "arch": "mobilenetv3_small_100", "stem_stride": 1, "image_size": 32,
            "feature_dim": 1024, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
            "data": {"format": "cifar10", "root": "/data/cifar10", "train_samples": 0},
            "config": {"name": "mnv3s", "train": {"epochs": 200}}, "epoch": 200,
            "metrics": {"knn_top1": 61.234, "cosine_mean": 0.9991},
            "export": {"target": "onnx", "precision": "int8", "file": "encoder.int8.onnx"},
            "method": "infonce: InfoNCE against the EMA teacher's weak-view keys"}
    text = write_model_card(tmp_path / "card" / "encoder.md", info).read_text()
    for heading in ("# mnv3s-cifar10", "## Architecture", "## Input", "## Training", "## Metrics", "## Export",
                    "## Runtime versions"):
        assert heading in text
    assert "32 x 32 RGB" in text and "0.485, 0.456, 0.406" in text and "cifar10 /data/cifar10" in text
    assert recipe_hash(info["config"]) in text and "61.23" in text and "| torch |" in text
    assert "by edgessl with infonce: InfoNCE against the EMA teacher's weak-view keys." in text


def test_missing_keys_are_tolerated(tmp_path):
    text = write_model_card(tmp_path / "card.md", {"runtimes": {"onnxruntime": "1.0"}}).read_text()
    assert "# edgessl encoder" in text and "unknown" in text and "| onnxruntime | 1.0 |" in text
    assert "## Metrics" not in text


def test_recipe_hash_ignores_key_order_and_versions_include_torch():
    assert recipe_hash({"a": 1, "b": {"c": 2}}) == recipe_hash({"b": {"c": 2}, "a": 1}) != recipe_hash({"a": 2})
    assert {"python", "torch"} <= runtime_versions().keys()
