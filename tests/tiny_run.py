"""A tiny run configuration shared by engine tests (synthetic 16 px data, a few steps)."""

from edgessl.config import Config, load_config

TINY = ["data.format=synthetic", "data.image_size=16", "data.synthetic_train=64", "data.synthetic_test=32",
        "data.num_workers=0", "model.arch=mobilenetv3_small_100", "model.projector_hidden=64",
        "model.projector_dim=32", "ressl.queue_size=64", "train.batch_size=16", "train.epochs=2",
        "train.log_every=2", "train.knn_every=1", "knn.k=5", "optim.warmup_epochs=1", "ressl.bn_splits=4"]


def tiny(tmp_path, *extra: str) -> Config:
    """The tiny config writing into `tmp_path`, with extra `key=value` overrides."""
    return load_config(None, TINY + [f"output_dir={tmp_path}", *extra])


