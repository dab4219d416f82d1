"""schemas/lock.schema.json and schemas/project.schema.json agree with the readers: what hubctl writes
validates against the schema, and documents the readers reject for their shape the schema rejects too."""

from __future__ import annotations

import json
import sys

import jsonschema
import pytest

from hubctl.config import bundled_schemas_path
from hubctl.lock.lockfile import Lock, LockedFile, LockedPackage, dumps_lock, inputs_digest
from hubctl.lock.pin import pin
from hubctl.lock.schema import lock_file_schema
from hubctl.lock.project import project_file_schema
from hubctl.resolve import resolve
from hubctl.registry.schema_export import render_schema
from tests._hubs import demo_index, fake_sha

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((bundled_schemas_path() / name).read_text())
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("name,fn", [("lock.schema.json", lock_file_schema), ("project.schema.json", project_file_schema)])
def test_checked_in_schema_is_what_the_model_generates(name, fn):
    assert (bundled_schemas_path() / name).read_text() == render_schema(name, fn)


def _lock_doc() -> dict:
    res = resolve(["demo-sd<2", "demo-style"], demo_index())
    hf = LockedFile("extra.safetensors", "hf://org/repo@" + "a" * 40 + "/extra.safetensors", 1, fake_sha("e"), "main")
    pkgs = pin(res)
    pkgs[0] = LockedPackage(**{**pkgs[0].__dict__, "files": pkgs[0].files + (hf,)})
    text = dumps_lock(Lock(packages=pkgs, requires=res.requirements, inputs_digest=inputs_digest(res.requirements), dtype="fp16", vram="10GiB"))
    return tomllib.loads(text)


def test_a_written_lock_validates_against_the_schema():
    v = _validator("lock.schema.json")
    assert list(v.iter_errors(_lock_doc())) == []


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.pop("inputs-digest"),
        lambda d: d.update({"lock-version": "2.0"}),
        lambda d: d.update({"surprise": 1}),
        lambda d: d["packages"][0]["files"][0]["hashes"].update(sha256="ab"),
        lambda d: d["packages"][0].update(kind="hypernetwork"),
        lambda d: d["packages"][0].pop("family"),
        lambda d: d["packages"][0].update(files=[]),
        lambda d: d["packages"][0]["files"][0].update(size=-1),
    ],
)
def test_what_the_lock_reader_rejects_the_schema_rejects(mutate):
    from hubctl.errors import BadInput
    from hubctl.lock.lockfile import loads_lock

    import tomli_w

    doc = _lock_doc()
    mutate(doc)
    assert list(_validator("lock.schema.json").iter_errors(doc)), "schema accepted it"
    with pytest.raises(BadInput):
        loads_lock(tomli_w.dumps(doc))


def test_project_files_validate_like_the_reader_says():
    v = _validator("project.schema.json")
    assert list(v.iter_errors({"requires": ["demo-sd<2"], "settings": {"dtype": "fp16", "vram": "10GiB", "pre": True}})) == []
    for bad in ({"require": []}, {"requires": "x"}, {"settings": {"dtype": "fp61"}}, {"settings": {"colour": 1}}, {"settings": {"pre": "yes"}}):
        assert list(v.iter_errors(bad)), bad
