"""The JSON Schemas in schemas/ are generated from the pydantic models and must stay in step with them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from hubctl.registry.schema_export import SCHEMAS, check_schemas, export_schemas, render_schema

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def test_checked_in_schemas_match_their_models() -> None:
    stale = check_schemas(ROOT / "schemas")
    assert stale == [], f"regenerate with `python -m hubctl.registry.schema_export`: {stale}"


def test_schema_check_notices_a_schema_that_disagrees_with_its_model(tmp_path: Path) -> None:
    export_schemas(tmp_path)
    assert check_schemas(tmp_path) == []
    doc = json.loads((tmp_path / "manifest.schema.json").read_text())
    del doc["$defs"]["FileRef"]["properties"]["sha256"]  # as if the model gained a field the schema lacks
    (tmp_path / "manifest.schema.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    (tmp_path / "families.schema.json").unlink()
    assert check_schemas(tmp_path) == ["manifest.schema.json", "families.schema.json"]


def test_exporter_takes_extra_models_by_class_or_name(tmp_path: Path) -> None:
    from pydantic import BaseModel

    class Extra(BaseModel):
        x: int

    entries = [("extra.schema.json", Extra), ("manifest.schema.json", "hubctl.registry.manifest:Manifest")]
    written = export_schemas(tmp_path, entries)
    assert [p.name for p in written] == ["extra.schema.json", "manifest.schema.json"]
    assert json.loads((tmp_path / "extra.schema.json").read_text())["properties"]["x"]["type"] == "integer"
    assert check_schemas(tmp_path, entries) == []


def test_schema_text_is_stable() -> None:
    for filename, target in SCHEMAS:
        assert render_schema(filename, target) == render_schema(filename, target)


def test_every_default_manifest_and_the_families_file_validate_against_the_schemas() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    man_schema = json.loads((ROOT / "schemas" / "manifest.schema.json").read_text())
    fam_schema = json.loads((ROOT / "schemas" / "families.schema.json").read_text())
    files = sorted((ROOT / "registry" / "manifests").glob("*/*.toml"))
    assert len(files) >= 15
    for f in files:
        jsonschema.validate(tomllib.loads(f.read_text()), man_schema)
    jsonschema.validate(tomllib.loads((ROOT / "registry" / "families.toml").read_text()), fam_schema)


def test_schema_rejects_what_the_model_rejects_for_simple_shapes() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "schemas" / "manifest.schema.json").read_text())
    good = {"name": "x", "kind": "lora", "versions": [{"version": "1.0", "family": "sd1", "variants": [
        {"name": "a", "files": [{"path": "a.safetensors", "source": "https://e.org/a", "sha256": "ab" * 32}]}]}]}
    jsonschema.validate(good, schema)
    for bad in (
        {**good, "kind": "hypernetwork"},
        {**good, "licence": "mit"},
        {k: v for k, v in good.items() if k != "versions"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
    bad_sha = json.loads(json.dumps(good))
    bad_sha["versions"][0]["variants"][0]["files"][0]["sha256"] = "ab" * 31
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad_sha, schema)
