"""Which tool a folder belongs to and where its models are; AIRs and civitai: sources read as values."""

from __future__ import annotations

import pytest

from hubctl.adopt.layouts import detect_layout, read_extra_model_paths
from hubctl.errors import BadInput


def test_extra_model_paths_relative_paths_are_read_against_base_path_and_the_files_folder(tmp_path):
    y = tmp_path / "ComfyUI" / "extra_model_paths.yaml"
    y.parent.mkdir()
    y.write_text("a111:\n  base_path: ../webui\n  loras: |\n    models/Lora\n    /abs/LyCORIS\n  is_default: true\n")
    got = {(str(f.path), f.hint) for f in read_extra_model_paths(y)}
    assert got == {(str(y.parent / "../webui/models/Lora"), "lora"), ("/abs/LyCORIS", "lora")}


def test_the_a1111_models_folder_itself_is_recognised(tmp_path):
    (tmp_path / "models" / "Stable-diffusion").mkdir(parents=True)
    (tmp_path / "models" / "Lora").mkdir()
    lay = detect_layout(tmp_path / "models")
    assert lay.tool == "a1111" and {f.hint for f in lay.folders} == {"checkpoint", "lora"}


def test_a_folder_of_no_known_tool_is_walked_whole(tmp_path):
    lay = detect_layout(tmp_path)
    assert lay.tool == "folder" and [f.path for f in lay.folders] == [tmp_path]


@pytest.mark.parametrize("text, want", [
    ("urn:air:sdxl:lora:civitai:328553@368189", ("sdxl", "lora", 328553, 368189)),
    ("urn:air:sd1:checkpoint:civitai:4201@130072.safetensors", ("sd1", "checkpoint", 4201, 130072)),
    ("urn:air:flux1:lora:civitai:1", ("flux1", "lora", 1, None)),
])
def test_airs_parse(text, want):
    from hubctl.sources.civitai import parse_air

    a = parse_air(text)
    assert (a.ecosystem, a.type, a.model_id, a.version_id) == want


@pytest.mark.parametrize("bad", ["urn:air:sdxl:lora", "urn:air:SDXL:lora:civitai:1@2", "air:sd1:lora:civitai:1@2", "urn:air:a:b:c:1@x"])
def test_malformed_airs_are_bad_input(bad):
    from hubctl.sources.civitai import parse_air

    with pytest.raises(BadInput):
        parse_air(bad)


def test_civitai_sources_parse_and_lock(tmp_path):
    from hubctl.registry.manifest import parse_source

    assert parse_source("civitai:128713").scheme == "civitai"
    assert parse_source("civitai:128713/94640").url == "civitai:128713/94640"
    for bad in ("civitai:", "civitai:0", "civitai:12/x", "civitai:1/2/3"):
        with pytest.raises(ValueError):
            parse_source(bad)
