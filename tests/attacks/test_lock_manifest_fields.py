"""Manifest and family fields that would later become a file name, a folder, a header or a terminal line are
refused at the edge, `hubctl registry add`, by the same rules a lock is read under (issue 17 item 12 first
half, item 1): one line naming the manifest (or families.toml) and the field, exit 2, nothing changed."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomli_w

FAMILIES = {"families": [{"id": "fam-a", "cross_attention_dim": 32, "text_encoder_widths": [32], "text_encoder_layers": [2]}]}


def _manifest(path: str = "style.safetensors", source: str = "https://example.org/style.safetensors", variant: str = "fp16") -> dict:
    return {"name": "style", "kind": "lora", "versions": [{"version": "1.0", "family": "fam-a", "variants": [
        {"name": variant, "files": [{"path": path, "size": 10, "sha256": "ab" * 32, "source": source}]}]}]}


# (id, manifest, families, file the message names, field path)
CASES = [
    ("path-newline", _manifest(path="style\n.safetensors"), FAMILIES, "manifests/lora/style.toml", "versions[0].variants[0].files[0].path"),
    ("path-nul", _manifest(path="style\x00.safetensors"), FAMILIES, "manifests/lora/style.toml", "versions[0].variants[0].files[0].path"),
    ("path-tab", _manifest(path="a\tb.safetensors"), FAMILIES, "manifests/lora/style.toml", "versions[0].variants[0].files[0].path"),
    ("path-escape-sequence", _manifest(path="\x1b]0;pwned\x07.safetensors"), FAMILIES, "manifests/lora/style.toml", "versions[0].variants[0].files[0].path"),
    ("path-segment-too-long", _manifest(path="d/" + "x" * 300), FAMILIES, "manifests/lora/style.toml", "versions[0].variants[0].files[0].path"),
    ("path-too-long", _manifest(path="/".join(["abcdefgh"] * 200)), FAMILIES, "manifests/lora/style.toml", "versions[0].variants[0].files[0].path"),
    ("source-header-injection", _manifest(source="https://example.org/x\r\nAuthorization: x"), FAMILIES, "manifests/lora/style.toml",
     "versions[0].variants[0].files[0].source"),
    ("variant-slash", _manifest(variant="../fp16"), FAMILIES, "manifests/lora/style.toml", "versions[0].variants[0].name"),
    ("family-id-path", _manifest(), {"families": [{**FAMILIES["families"][0], "id": "../../fam"}]}, "families.toml", "families[0].id"),
    ("family-id-newline", _manifest(), {"families": [{**FAMILIES["families"][0], "id": "fam\nb"}]}, "families.toml", "families[0].id"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_a_hostile_manifest_field_is_refused_at_registry_add(cli, tmp_path, hubctl_home, case):
    _, manifest, families, named, field = case
    reg = tmp_path / "reg"
    (reg / "manifests" / "lora").mkdir(parents=True)
    (reg / "families.toml").write_text(tomli_w.dumps(families))
    (reg / "manifests" / "lora" / "style.toml").write_text(tomli_w.dumps(manifest))
    r = cli("registry", "add", str(reg), "--name", "hostile")
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.output, r.stderr
    assert str(Path(reg) / named) in lines[0] and f"{field}:" in lines[0], lines[0]
    assert "\x1b" not in r.stderr and "\x00" not in r.stderr
    assert not (hubctl_home / "registries.toml").exists()
