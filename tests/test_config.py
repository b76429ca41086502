"""Recipes load into a typed config; bad keys and values give one-line errors naming the key."""

from pathlib import Path

import pytest
import yaml

from edgessl.config import Config, load_config
from edgessl.errors import EdgeSSLError
from edgessl.methods import resolve
from edgessl.models.registry import check_arch

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_every_recipe_loads_and_validates(recipe):
    cfg = load_config(recipe)
    check_arch(cfg.model.arch)
    resolve(cfg)  # the method's options and its checks (queues are whole steps of keys)
    assert cfg.name == yaml.safe_load(recipe.read_text()).get("name", recipe.stem)


def test_recipes_exist():
    names = {p.stem for p in RECIPES}
    assert {"quickstart", "cifar10_mobilenetv3_small", "tinyimagenet_mobilenetv3_small", "mobilenetv3_small",
            "mobilenetv3_large", "efficientnet_b0", "efficientnet_lite0", "mobilenetv2_100", "resnet50"} <= names


def test_overrides_are_typed():
    cfg = load_config(RECIPES[0], ["train.epochs=3", "data.root=/x", "optim.lr=0.1", "model.predictor=true"])
    assert cfg.train.epochs == 3 and cfg.data.root == "/x" and cfg.optim.lr == 0.1 and cfg.model.predictor is True


def test_exponent_without_a_dot_is_a_number():
    """YAML 1.1 reads `5e-4` as a string; a float key must still take it (and reject real text)."""
    assert load_config(None, ["optim.weight_decay=5e-4"]).optim.weight_decay == 5e-4
    with pytest.raises(EdgeSSLError, match="'optim.lr' must be a number"):
        load_config(None, ["optim.lr=fast"])


def test_resolved_config_is_a_valid_recipe(tmp_path):
    cfg = load_config(None, ["train.epochs=7", "name=x"])
    cfg.save(tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg


@pytest.mark.parametrize("override, words", [
    (["train.epoch=3"], ["unknown config key 'train.epoch'", "train.epochs"]),
    (["epochs=3"], ["unknown config key 'epochs'", "train.epochs"]),
    (["train.epochs=abc"], ["'train.epochs'", "integer", "abc"]),
    (["train.epochs=0"], ["'train.epochs'", ">= 1"]),
    (["train.amp=fp8"], ["'train.amp'", "none, bf16, fp16"]),
    (["model.stem_stride=3"], ["'model.stem_stride'", "1, 2"]),
    (["train.epochs"], ["key=value"]),
    (["ressl=3"], ["unknown config key 'ressl'"]),
])
def test_bad_values_are_one_line_errors(override, words):
    with pytest.raises(EdgeSSLError) as err:
        load_config(None, override)
    msg = str(err.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg


def test_bad_recipe_file_errors(tmp_path):
    with pytest.raises(EdgeSSLError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: 2\n  bach_size: 4\n")
    with pytest.raises(EdgeSSLError, match=r"bad.yaml: unknown config key 'train.bach_size'; did you mean 'train.batch_size'"):
        load_config(bad)
    bad.write_text("train: [1, 2\n")
    with pytest.raises(EdgeSSLError, match="not valid YAML"):
        load_config(bad)


def test_unknown_student_lists_valid_names():
    with pytest.raises(EdgeSSLError, match="mobilenetv3_small_100, .*efficientnet_lite0"):
        check_arch("mobilenet_v9")


def test_defaults_are_the_spec():
    cfg = Config()
    assert cfg.method == "ressl" and cfg.methods == {}
    _, options = resolve(cfg)
    assert (options.tau_s, options.tau_t, options.infonce_weight) == (0.1, 0.04, 0.0)


def test_method_sections_are_kept_for_the_method_and_saved_at_the_top(tmp_path):
    cfg = load_config(None, ["method=simclr", "simclr.temperature=0.3", "ressl.tau_s=0.2"])
    assert cfg.methods == {"simclr": {"temperature": 0.3}, "ressl": {"tau_s": 0.2}}
    assert cfg.to_dict()["simclr"] == {"temperature": 0.3} and "methods" not in cfg.to_dict()
    cfg.save(tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg


def test_old_teacher_section_says_to_rename_it(tmp_path):
    old = tmp_path / "old.yaml"
    old.write_text("teacher:\n  arch: resnet18\n")
    with pytest.raises(EdgeSSLError, match=r"old.yaml: the 'teacher:' section .* is now called 'distill:'; rename it"):
        load_config(old)
    from edgessl.config import config_from_dict  # a stored config (checkpoint) is read as it was meant

    assert config_from_dict({"teacher": {"arch": "resnet18"}}).distill.arch == "resnet18"
