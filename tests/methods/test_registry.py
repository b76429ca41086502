"""The method registry: names, option sections checked like recipe keys, and what each method says it trains."""

import dataclasses

import pytest

from edgessl.config import load_config
from edgessl.errors import EdgeSSLError
from edgessl.methods import METHODS, describe, method_class, resolve


def test_every_registered_method_has_options_and_names_its_loss():
    for name in METHODS:
        cls = method_class(name)
        assert cls.name == name and dataclasses.is_dataclass(cls.Options)
        assert describe(load_config(None, [f"method={name}"])).startswith(f"{name}: ")


def test_resolve_fills_the_defaults_into_the_config():
    cfg = load_config(None, ["method=infonce", "infonce.tau=0.3"])
    _, options = resolve(cfg)
    assert options.tau == 0.3 and cfg.to_dict()["infonce"]["queue_size"] == 4096


def test_ressl_names_the_loss_that_actually_trains():
    assert describe(load_config(None)) == "ressl: the relation loss (ReSSL)"
    assert "InfoNCE alone" in describe(load_config(None, ["ressl.infonce_weight=1"]))
    assert describe(load_config(None, ["ressl.infonce_warmup_epochs=2", "ressl.infonce_weight=0.5"])) == \
        "ressl: InfoNCE for 2 epochs, then 0.5 x InfoNCE + 0.5 x the relation loss"


@pytest.mark.parametrize("override, words", [
    (["method=simclrr"], ["unknown method 'simclrr'", "did you mean 'simclr'", "ressl, infonce"]),
    (["ressl.tau_t=0"], ["'ressl.tau_t'", "> 0"]),
    (["ressl.ema_momentum=1.5"], ["'ressl.ema_momentum'", "<= 1"]),
    (["ressl.tau=0.2"], ["unknown config key 'ressl.tau'", "did you mean 'ressl.tau_"]),
    (["byol.ema_schedule=linear"], ["'byol.ema_schedule'", "constant, cosine"]),
    (["rssl.tau_s=0.2"], ["unknown config section 'rssl'", "did you mean 'ressl'"]),
    (["method=simclr", "data.small_crops=2"], ["method=simclr does not use multi-crop", "data.small_crops=0"]),
    (["method=moco_v2", "moco_v2.queue_size=100", "train.batch_size=64"], ["moco_v2.queue_size=100 is not a multiple"]),
])
def test_bad_method_settings_are_one_line_errors(override, words):
    with pytest.raises(EdgeSSLError) as err:
        resolve(load_config(None, override))
    msg = str(err.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg


def test_the_docs_add_a_method_example_trains(tmp_path, monkeypatch):
    """docs/methods.md's "Add a method" module, registered with its one line, runs a training step through the engine."""
    import importlib.util
    import re
    import sys
    from pathlib import Path

    import edgessl.methods as registry
    from edgessl.engine.sampler import GlobalBatchSampler
    from edgessl.engine.trainer import Trainer
    from tests.tiny_run import tiny

    page = (Path(__file__).resolve().parents[2] / "docs" / "methods.md").read_text()
    section = page[page.index("## Add a method"):]
    module = re.search(r"```python\n# edgessl/methods/my_method.py\n(.*?)```", section, re.S).group(1)
    assert '"my_method": "edgessl.methods.my_method:MyMethod",' in section
    path = tmp_path / "my_method.py"
    path.write_text(module)
    spec = importlib.util.spec_from_file_location("edgessl.methods.my_method", path)
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "edgessl.methods.my_method", mod)
    spec.loader.exec_module(mod)
    monkeypatch.setitem(registry.METHODS, "my_method", "edgessl.methods.my_method:MyMethod")
    trainer = Trainer(tiny(tmp_path / "run", "method=my_method", "my_method.temperature=0.2"))
    assert trainer.model.columns() == ("cosine",) and trainer.log.columns[5] == "cosine"
    sampler = GlobalBatchSampler(len(trainer.train_set), 16, 0, 1, 0)
    sampler.set_epoch(0)
    batch = next(iter(trainer._loader(sampler)))[0]
    out = trainer.train_step(*trainer._views(batch))
    assert out.loss_kind == "my_loss" and out.loss.requires_grad and trainer.step == 1
