"""TrainConfig: one set of training defaults, the shipped recipe's; validation; torch-free."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from unet_edge.datasets import parse_names
from unet_edge.errors import ConfigError
from unet_edge.training.config import Optimizer, Schedule, TrainConfig

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "export" / "isbi2012-default"

# The shipped model's recipe as its model card states it (first command: 3000 steps).
CARD = {
    "width": 16,
    "depth": 4,
    "tile": 444,
    "steps": 3000,
    "lr": 5e-4,
    "optimizer": "adam",
    "schedule": "cosine",
    "batch_size": 1,
    "seed": 2012,
    "val_every": 250,
    "threads": 2,
    "classes": 2,
    "class_names": ["membrane", "cell"],
    "w0": 10.0,
    "sigma": 5.0,
    "augment": True,
    "elastic_sigma": 10.0,
    "norm_low": 5.0,
    "norm_high": 70.0,
    "norm_clip": True,
    "select": "rand_error_expanded",
}


def load_recipe() -> ModuleType:
    spec = importlib.util.spec_from_file_location("isbi2012_default_train", RECIPE / "train.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_defaults_are_the_shipped_recipe():
    defaults = TrainConfig().to_dict()
    assert {k: defaults[k] for k in CARD} == CARD
    assert defaults["val_names"] == [] and defaults["train_names"] is None


def test_recipe_is_the_defaults_plus_its_split_and_name():
    recipe = load_recipe().CONFIG
    expected = dataclasses.replace(
        TrainConfig(), val_names=("20", "21", "22", "23", "24"), name="isbi2012-default"
    )
    assert recipe == expected
    differs = {
        f.name for f in dataclasses.fields(TrainConfig) if getattr(recipe, f.name) != f.default
    }
    assert differs == {"val_names", "name"}


def test_shipped_checkpoint_was_trained_with_the_recipe():
    torch = pytest.importorskip("torch", reason="reading the checkpoint needs torch")
    state = torch.load(RECIPE / "checkpoint.pt", map_location="cpu", weights_only=False)
    recorded = dict(state["training"]["config"])
    recipe = load_recipe().CONFIG.to_dict()
    # The shipped weights are the recipe's last stage: a fine-tune with --steps 1500 --lr 5e-5
    # --init (MODEL_CARD.md); everything else is the recipe.
    assert (recorded.pop("steps"), recorded.pop("lr")) == (1500, 5e-5)
    recipe.pop("steps"), recipe.pop("lr")
    # training_data (words for packages) came after these weights; "" means "record the folder"
    assert recorded.pop("training_data", "") == recipe.pop("training_data") == ""
    # the pixel size (4 nm) is set by finalize.py after training, for the export
    assert recorded.pop("pixel_size", 0.004) == 0.004 and recipe.pop("pixel_size") is None
    # these fields came after the weights, which read class maps with the exposure
    # augmentation at probability 0.5 (the defaults)
    new = {"labels": "classes", "target": "two-class", "border": 2.0, "objects": []}
    new |= {"exposure": 0.5, "split": None, "min_size": None}
    assert {k: recorded.pop(k, v) for k, v in new.items()} == new
    assert {k: recipe.pop(k) for k in new} == new
    assert recorded == recipe


def test_every_field_has_a_plain_default():
    """The CLI reads its option defaults from the fields, at import time."""
    for f in dataclasses.fields(TrainConfig):
        assert f.default is not dataclasses.MISSING, f.name


def test_strings_and_lists_are_resolved_and_round_trip():
    cfg = TrainConfig(optimizer="SGD", schedule="constant", val_names=["20"], train_names=["00"])
    assert cfg.optimizer is Optimizer.SGD and cfg.schedule is Schedule.CONSTANT
    assert cfg.val_names == ("20",) and cfg.train_names == ("00",)
    assert TrainConfig(**cfg.to_dict()) == cfg
    assert cfg.architecture.base_width == 16 and cfg.geometry.depth == 4
    assert TrainConfig(val_names=parse_names("20-21")).val_names == ("20", "21")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tile": 100}, "not legal"),
        ({"optimizer": "adma"}, r"Did you mean .adam."),
        ({"schedule": "cosin"}, r"Did you mean .cosine."),
        ({"steps": 0}, r"steps must be a positive integer, got 0"),
        ({"width": 8.0}, r"width must be a positive integer"),
        ({"val_every": True}, r"val_every must be a positive integer"),
        ({"threads": -1}, r"threads must be a positive integer"),
        ({"batch_size": 0}, r"batch_size must be a positive integer"),
        ({"lr": 0.0}, r"learning rate must be > 0"),
        ({"class_names": ("a", "b", "c")}, r"3 class names .* for 2 classes"),
        ({"val_names": ("20", "21"), "train_names": ("21",)}, r"\['21'\] are in both"),
        ({"select": "accuracy"}, r"unknown selection metric 'accuracy'.*rand_error_expanded"),
        ({"split": "voronoi"}, r"split must be 'watershed' or 'none', got 'voronoi'"),
        ({"min_size": "ten"}, r"minimum object size .* got 'ten'"),
    ],
)
def test_invalid_values_are_refused_by_name(kwargs: dict[str, object], message: str):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**kwargs)  # type: ignore[arg-type]


def test_config_and_recipe_import_without_torch(imports_none_of):
    code = (
        "import importlib.util; import unet_edge.training.config, unet_edge.training; "
        f"spec = importlib.util.spec_from_file_location('r', {str(RECIPE / 'train.py')!r}); "
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); m.CONFIG"
    )
    imports_none_of(code, "torch")


def test_loop_re_exports_the_same_names():
    pytest.importorskip("torch", reason="the training loop needs the [train] extra (torch)")
    from unet_edge.training import config, loop

    for name in ("TrainConfig", "Optimizer", "Schedule", "parse_names"):
        assert getattr(loop, name) is getattr(config, name), name


def test_the_stated_labelling_rule_of_a_run():
    from unet_edge.training.config import stated_labelling

    assert stated_labelling(TrainConfig().to_dict()) == {}
    assert stated_labelling({}) == {}  # a config recorded before these fields
    ruled = TrainConfig(split="watershed", min_size="10px").to_dict()
    assert stated_labelling(ruled) == {"split": "watershed", "min_size": "10px"}
    three = TrainConfig(
        labels="instances",
        target="three-class",
        classes=3,
        class_names=("background", "nucleus", "edge"),
    )
    assert stated_labelling(three.to_dict()) == {"border": "edge"}
    two = TrainConfig(labels="instances", class_names=("background", "nucleus"))
    assert stated_labelling(two.to_dict()) == {}
