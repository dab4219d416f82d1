"""Manifest models: sources, files, variants, versions and packages validate with one-line, located
messages; TOML round-trips; the values the resolver and installer rely on (pins, sizes, versions) hold."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from hubctl.errors import BadInput
from hubctl.registry.manifest import Manifest, dump_manifest, load_manifest, parse_manifest, parse_source
from tests._asserts import bad_input_line

SHA = "ab" * 32


def raw(**over):  # type: ignore[no-untyped-def]
    data = {
        "name": "paper-cut",
        "kind": "lora",
        "summary": "Paper-cut style",
        "versions": [
            {
                "version": "1.0",
                "family": "sd1",
                "requires": ["stable-diffusion>=1.4,<2"],
                "trigger": ["papercut"],
                "variants": [{"name": "fp16", "dtype": "fp16", "files": [
                    {"path": "a/papercut.safetensors", "size": 10, "sha256": SHA, "source": "hf://org/repo@main/papercut.safetensors"}
                ]}],
            }
        ],
    }
    data.update(over)
    return data


def bad(data, **kw) -> str:  # type: ignore[no-untyped-def]
    return bad_input_line(lambda: parse_manifest(data, origin="x.toml", **kw), "x.toml")


# --------------------------------------------------------------------------------------------- sources


@pytest.mark.parametrize(
    "url, scheme, repo, rtype, rev, path",
    [
        ("hf://org/repo/file.safetensors", "hf", "org/repo", "model", None, "file.safetensors"),
        ("hf://org/repo@main/sub/dir/f.bin", "hf", "org/repo", "model", "main", "sub/dir/f.bin"),
        ("hf://datasets/org/repo@" + "a" * 40 + "/x.pt", "hf", "org/repo", "dataset", "a" * 40, "x.pt"),
        ("hf://org/repo@refs%2Fpr%2F1/f", "hf", "org/repo", "model", "refs/pr/1", "f"),
        ("https://civitai.com/api/download/models/9208", "https", None, "model", None, None),
        ("file:///tmp/a.safetensors", "file", None, "model", None, "/tmp/a.safetensors"),
    ],
)
def test_sources_parse(url, scheme, repo, rtype, rev, path) -> None:  # type: ignore[no-untyped-def]
    s = parse_source(url)
    assert (s.scheme, s.repo_id, s.repo_type, s.revision, s.path) == (scheme, repo, rtype, rev, path)


@pytest.mark.parametrize(
    "url, words",
    [
        ("ftp://host/x", "unknown URL scheme 'ftp'"),
        ("hf://org", "is not hf://org/repo[@revision]/path"),
        ("hf://org/repo@/f", "empty revision"),
        ("hf://org/repo/../f", "does not name a file"),
        ("hf://org/repo/dir/", "does not name a file"),
        ("https:///nohost", "has no host"),
        ("file://remote/x", "names a remote host"),
        ("", "source is empty"),
    ],
)
def test_bad_sources_say_why(url: str, words: str) -> None:
    with pytest.raises(ValueError, match=None) as e:
        parse_source(url)
    assert words in str(e.value)


def test_only_a_full_commit_counts_as_pinned() -> None:
    assert not parse_source("hf://org/repo/f").pinned
    assert not parse_source("hf://org/repo@986807e/f").pinned  # a short commit is not a pin
    pinned = parse_source("hf://datasets/org/repo@main/f").with_revision("c" * 40)
    assert pinned.pinned and pinned.url == f"hf://datasets/org/repo@{'c' * 40}/f"
    assert parse_source("https://e.org/x").pinned


# --------------------------------------------------------------------------------------------- validation


def test_a_good_manifest_validates_and_exposes_typed_values() -> None:
    m = parse_manifest(raw(), origin="x.toml", known_families={"sd1"}, expected_kind="lora", expected_name="Paper_Cut")
    v = m.get_version("1.0.0")
    assert v is not None and str(v.requirements[0].specifier) == "<2,>=1.4"
    assert v.variants[0].size == 10 and m.canonical_name == "paper-cut"


def test_sha256_is_normalised_from_upper_case_and_prefix() -> None:
    d = raw()
    d["versions"][0]["variants"][0]["files"][0]["sha256"] = "sha256:" + SHA.upper()
    assert parse_manifest(d).versions[0].variants[0].files[0].sha256 == SHA


def test_variant_size_is_unknown_when_one_file_size_is() -> None:
    d = raw()
    d["versions"][0]["variants"][0]["files"].append({"path": "b.json", "source": "https://e.org/b.json"})
    assert parse_manifest(d).versions[0].variants[0].size is None


@pytest.mark.parametrize(
    "mutate, where, words",
    [
        (lambda d: d["versions"][0].update(version="1.0-beta-x"), "versions[0].version", "is not a PEP 440 version"),
        (lambda d: d.update(kind="hypernetwork"), "kind", "is not one of"),
        (lambda d: d["versions"][0]["variants"][0]["files"][0].update(sha256="abc"), "files[0].sha256", "got 3 characters"),
        (lambda d: d["versions"][0]["variants"][0]["files"][0].update(sha256="g" * 64), "files[0].sha256", "is not a sha256"),
        (lambda d: d["versions"][0]["variants"][0]["files"][0].update(path="a/../../b"), "files[0].path", "escapes its package"),
        (lambda d: d["versions"][0]["variants"][0]["files"][0].update(path="/abs"), "files[0].path", "absolute path"),
        (lambda d: d["versions"][0]["variants"][0]["files"][0].update(path="C:/x"), "files[0].path", "absolute path"),
        (lambda d: d["versions"][0]["variants"][0]["files"][0].update(path="a\\b"), "files[0].path", "backslashes"),
        (lambda d: d["versions"][0]["variants"][0]["files"][0].update(size=-1), "files[0].size", "greater than or equal to 0"),
        (lambda d: d["versions"][0]["variants"][0]["files"][0].update(source="s3://b/k"), "files[0].source", "unknown URL scheme 's3'"),
        (lambda d: d["versions"][0].update(requires=["ok", "not a req ((("]), "versions[0].requires[1]", "is not a requirement"),
        (lambda d: d["versions"].append(copy.deepcopy(d["versions"][0])), "versions[1].version", "duplicates '1.0'"),
        (lambda d: d["versions"][0]["variants"].append(copy.deepcopy(d["versions"][0]["variants"][0])), "versions[0].variants[1].name", "appears twice"),
        (lambda d: d["versions"][0]["variants"][0]["files"].append(copy.deepcopy(d["versions"][0]["variants"][0]["files"][0])), "files[1].path", "appears twice"),
        (lambda d: d["versions"][0]["variants"][0].update(files=[]), "versions[0].variants[0].files", "at least 1"),
        (lambda d: d.update(name="Paper Cut"), "name", "is not a valid package name"),
        (lambda d: d.update(colour="red"), "colour", "unknown field"),
        (lambda d: d["versions"][0].update(prediction="x0"), "versions[0].prediction", "is not one of"),
        (lambda d: d.pop("versions"), "versions", "required field is missing"),
    ],
)
def test_each_bad_field_gives_one_located_line(mutate, where: str, words: str) -> None:  # type: ignore[no-untyped-def]
    d = raw()
    mutate(d)
    msg = bad(d)
    assert where in msg and words in msg, msg


def test_unknown_family_lists_the_known_ones() -> None:
    msg = bad(raw(), known_families={"sd1x", "sd2"})
    assert "versions[0].family: unknown family 'sd1' (known: sd1x, sd2)" in msg


def test_location_checks_name_the_folder_and_file() -> None:
    assert "does not match its folder 'embedding'" in bad(raw(), expected_kind="embedding")
    assert "does not match its file name 'other'" in bad(raw(), expected_name="other")


# --------------------------------------------------------------------------------------------- files


def test_load_manifest_names_the_file_for_toml_and_encoding_errors(tmp_path: Path) -> None:
    f = tmp_path / "lora" / "x.toml"
    f.parent.mkdir()
    f.write_text('name = "x"\nkind = \n')
    with pytest.raises(BadInput, match=rf"^{f}: invalid TOML"):
        load_manifest(f)
    f.write_bytes(b'name = "\xff"\n')
    with pytest.raises(BadInput, match=rf"^{f}: is not UTF-8 text"):
        load_manifest(f)
    with pytest.raises(BadInput, match="cannot read manifest"):
        load_manifest(tmp_path / "missing.toml")


def test_dump_then_load_round_trips(tmp_path: Path) -> None:
    m = parse_manifest(raw(license="mit"))
    text = dump_manifest(m)
    assert "yanked" not in text and 'task = "normal"' not in text
    f = tmp_path / "lora" / "paper-cut.toml"
    f.parent.mkdir()
    f.write_text(text)
    assert load_manifest(f) == m


def test_model_is_frozen_and_strict_about_types() -> None:
    m = parse_manifest(raw())
    with pytest.raises(Exception):
        m.name = "other"  # type: ignore[misc]
    assert isinstance(Manifest.model_validate_json(m.model_dump_json()), Manifest)


# --------------------------------------------------------------------------------------------- hostile input

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_KEYS = ["name", "kind", "summary", "license", "versions", "version", "family", "requires", "prediction", "variants",
         "files", "path", "size", "sha256", "source", "dtype", "layout", "tokens", "trigger", "task", "resolution", "x"]
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=True),
    st.text(max_size=30), st.sampled_from(["lora", "sd1", "1.0", "hf://o/r/f", "../x", "/abs", "a" * 64, ">=1,<2", "fp16", "1.0\nx", "a\rb"]),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(_KEYS), inner, max_size=5)),
    max_leaves=20,
)


def _mutated(draw_base: dict, path: list, value: object) -> dict:  # type: ignore[type-arg]
    d = copy.deepcopy(draw_base)
    node = d
    for key in path[:-1]:
        node = node[key] if isinstance(node, dict) or (isinstance(node, list) and isinstance(key, int)) else node
    if isinstance(node, dict):
        node[path[-1]] = value
    return d


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(top=st.dictionaries(st.sampled_from(_KEYS), _values, max_size=6), key=st.sampled_from(_KEYS), value=_values)
def test_any_mapping_is_a_manifest_or_one_bad_input_line(top: dict, key: str, value: object) -> None:  # type: ignore[type-arg]
    for data in (top, {**raw(), key: value}, _mutated(raw(), ["versions", 0, key], value)):
        try:
            parse_manifest(data, origin="h.toml", known_families={"sd1"})
        except BadInput as e:
            msg = str(e)
            assert msg.startswith("h.toml: ") and "\n" not in msg and "Traceback" not in msg


def test_a_value_with_a_newline_still_gives_one_line() -> None:
    d = raw()
    d["versions"][0]["version"] = "1.0\nrm -rf"
    assert bad(d) == "x.toml: versions[0].version: '1.0\\nrm -rf' is not a PEP 440 version"
