"""What a bioimage.io package says about its model (unet_edge.training.package.describe and
``unet-edge package --name --description --author --training-data --tag``): defaults from the
model's own metadata, ISBI 2012 only for the shipped model, the user's words when given."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from cli_helpers import one_line_error
from click.testing import CliRunner

from unet_edge import metadata
from unet_edge.cli import main
from unet_edge.config import Normalization, UNetConfig
from unet_edge.errors import ConfigError
from unet_edge.runtime import default_model_path
from unet_edge.training.package import ISBI_DATA, UNRECORDED, About, describe, parse_author


def _info(**provenance: object) -> metadata.ModelInfo:
    return metadata.ModelInfo(
        UNetConfig(classes=2, depth=2, base_width=2),
        Normalization(),
        ("background", "nucleus"),
        name="nuc",
        provenance=provenance,
    )


def test_the_shipped_model_keeps_its_isbi_description() -> None:
    d = describe(metadata.read(default_model_path()), None, foreign=False)
    assert d.isbi and d.training_data == ISBI_DATA and "ISBI 2012" in d.description
    assert {"electron-microscopy", "isbi2012"} <= set(d.tags)
    assert d.authors == (("unet-edge developers", None),)


def test_a_model_trained_elsewhere_says_what_it_recorded_and_nothing_of_isbi() -> None:
    d = describe(_info(training_data="40 synthetic nuclei images"), None, foreign=False)
    assert not d.isbi and d.training_data == "40 synthetic nuclei images"
    assert "40 synthetic nuclei images" in d.description and "nucleus" in d.description
    assert "ISBI" not in d.description and "isbi2012" not in d.tags
    assert "electron-microscopy" not in d.tags and d.authors[0][0].startswith("unknown")


def test_unrecorded_and_probed_models_claim_no_training_data() -> None:
    assert describe(_info(), None, foreign=False).training_data == UNRECORDED
    probed = describe(_info(training_data="x", recipe="export/isbi2012-default"), None, True)
    assert probed.training_data == UNRECORDED and not probed.isbi
    assert "trained on" not in probed.description


def test_the_users_words_replace_the_defaults_and_tags_add() -> None:
    about = About(
        name="My nuclei",
        description="Nuclei in Hoechst.",
        authors=(("Ada", "UCL"),),
        training_data="confocal nuclei",
        tags=("fluorescence", "unet"),
    )
    d = describe(metadata.read(default_model_path()), about, foreign=False)
    assert (d.name, d.description, d.authors) == (
        "My nuclei",
        "Nuclei in Hoechst.",
        (("Ada", "UCL"),),
    )
    # the user said the data is something else: no EM/ISBI tags on the strength of the recipe
    assert d.training_data == "confocal nuclei" and "isbi2012" not in d.tags
    assert d.tags.count("unet") == 1 and "fluorescence" in d.tags


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Ada", ("Ada", None)),
        ("Ada Lovelace: UCL", ("Ada Lovelace", "UCL")),
        ("A:b:c", ("A", "b:c")),
    ],
)
def test_parse_author(text: str, expected: tuple[str, str | None]) -> None:
    assert parse_author(text) == expected


@pytest.mark.parametrize("text", ["", ":UCL", "a/b"])
def test_parse_author_refuses(text: str) -> None:
    with pytest.raises(ConfigError, match="NAME:AFFILIATION"):
        parse_author(text)


def test_package_command_writes_the_given_description(tiny_onnx: Path, tmp_path: Path) -> None:
    pytest.importorskip("bioimageio.spec", reason="needs the [bioimageio] extra")
    yaml = pytest.importorskip("yaml")
    out = tmp_path / "p.zip"
    args = ["package", str(tiny_onnx), "-o", str(out), "--name", "tiny nuclei"]
    args += ["--author", "Ada Lovelace:UCL", "--author", "Bob", "--tag", "fluorescence"]
    args += ["--training-data", "200 generated nuclei images", "--description", "Tiny."]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    z = zipfile.ZipFile(out)
    rdf = yaml.safe_load(z.read("rdf.yaml"))
    readme = z.read("README.md").decode()
    assert rdf["name"] == "tiny nuclei" and rdf["description"] == "Tiny."
    assert [(a["name"], a.get("affiliation")) for a in rdf["authors"]] == [
        ("Ada Lovelace", "UCL"),
        ("Bob", None),
    ]
    assert "fluorescence" in rdf["tags"] and "isbi2012" not in rdf["tags"]
    assert "200 generated nuclei images" in readme and "ISBI" not in readme
    assert all("Arganda" not in c["text"] for c in rdf["cite"])
    assert "NAME:AFFILIATION" in one_line_error(
        CliRunner().invoke(
            main, ["package", str(tiny_onnx), "-o", str(tmp_path / "q.zip"), "--author", ":x"]
        )
    )
