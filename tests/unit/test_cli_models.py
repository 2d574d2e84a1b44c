"""`unet-edge models` lists what ships; `-m NAME` takes a shipped name, unknown names fail."""

from __future__ import annotations

import json

from click.testing import CliRunner

from unet_edge.cli import main


def test_models_lists_every_shipped_model():
    r = CliRunner().invoke(main, ["models"])
    assert r.exit_code == 0, r.output
    assert "isbi2012 (default)" in r.output and "nuclei:" in r.output
    assert "nucleus*" in r.output  # the object class is marked
    assert "training data:" in r.output and "nuclei.onnx" in r.output


def test_models_json():
    r = CliRunner().invoke(main, ["models", "--json"])
    assert r.exit_code == 0
    names = [d["name"] for d in json.loads(r.output)]
    assert names == ["isbi2012", "nuclei"]


def test_info_takes_a_model_name_and_refuses_an_unknown_one():
    r = CliRunner().invoke(main, ["info", "-m", "nuclei"])
    assert r.exit_code == 0, r.output
    assert "nucleus" in r.output
    bad = CliRunner().invoke(main, ["info", "-m", "nucleii"])
    assert bad.exit_code != 0
    assert "isbi2012, nuclei" in bad.output


def test_models_and_info_state_how_each_model_makes_objects():
    listed = CliRunner().invoke(main, ["models"]).output
    em, nuclei = listed.split("\nnuclei:")
    assert "objects:       connected regions" in em
    assert "objects:       split watershed, min size 10px" in nuclei
    r = CliRunner().invoke(main, ["info", "-m", "nuclei"])
    assert "objects    nucleus: split watershed, min size 10px (the model's)" in r.output
    r = CliRunner().invoke(main, ["info", "-m", "isbi2012"])
    assert "objects    cell: connected regions" in r.output
