"""`hubctl check BASE ADAPTER...`: exit 0 compatible, 1 not, 2 bad input; --json shape; package names from
the index (declared level + shape table), paths and a registry adapter read from its file:// source."""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.sparse import write_safetensors


def test_compatible_set_exits_0(cli, sparse) -> None:
    r = cli("check", sparse.get("sd1-ldm"), sparse.get("sd1-lora-kohya"), sparse.get("sd1-emb-diffusers"),
            sparse.get("sd1-controlnet-ldm"), "--json")
    assert r.exit_code == 0, r.output
    d = r.json()
    assert d["compatible"] is True and d["problems"] == [] and isinstance(d["warnings"], list)


def test_cross_family_set_exits_1_naming_both_widths(cli, sparse) -> None:
    r = cli("check", sparse.get("sd2-diffusers"), sparse.get("sd1-lora-kohya"), "--json")
    assert r.exit_code == 1
    d = r.json()
    assert d["compatible"] is False
    (p,) = d["problems"]
    assert p["artefact"] == "sd1-lora-kohya.safetensors"
    assert "is an SD1 LoRA (cross-attention 768); sd2-diffusers is SD2 (1024)" in p["reason"]
    assert "cannot apply" in p["reason"]


def test_human_output_says_not_compatible(cli, sparse) -> None:
    r = cli("check", sparse.get("sd1-ldm"), sparse.get("sd2-emb-kohya"))
    assert r.exit_code == 1
    assert "not compatible" in r.stdout and "width 1024" in r.stdout


def test_package_name_base_uses_declared_family_and_shape_table(cli, sparse) -> None:
    r = cli("check", "stable-diffusion==2.0", sparse.get("sd1-lora-kohya"), "--json")
    assert r.exit_code == 1, r.output
    (p,) = r.json()["problems"]
    assert "stable-diffusion 2.0 is SD2 (1024)" in p["reason"]
    assert r.json()["checked"][0]["levels"]["structural"].endswith("(shape table)")
    ok = cli("check", "stable-diffusion>=1.4,<2", sparse.get("sd1-lora-kohya"), "--json")
    assert ok.exit_code == 0, ok.output


def test_adapter_package_from_a_registry_is_read_from_its_source(cli, sparse, tmp_path) -> None:
    lora = sparse.get("sd1-lora-kohya")
    reg = tmp_path / "reg"
    (reg / "manifests" / "lora").mkdir(parents=True)
    (reg / "manifests" / "lora" / "arcane-style.toml").write_text(f'''
name = "arcane-style"
kind = "lora"
[[versions]]
version = "1.0"
family = "sd1"
requires = ["stable-diffusion>=1.4,<2"]
[[versions.variants]]
name = "fp16"
files = [{{ path = "arcane.safetensors", source = "{lora.as_uri()}" }}]
''')
    assert cli("registry", "add", reg).exit_code == 0
    r = cli("check", "stable-diffusion==2.0", "arcane-style", "--json")
    assert r.exit_code == 1, r.output
    reasons = [p["reason"] for p in r.json()["problems"]]
    assert "arcane-style 1.0 is declared for SD1; stable-diffusion 2.0 is SD2" in reasons
    assert "arcane-style 1.0 requires stable-diffusion>=1.4,<2; the base is stable-diffusion 2.0" in reasons
    assert any(x.startswith("arcane-style 1.0 is an SD1 LoRA (cross-attention 768); stable-diffusion 2.0 is SD2 (1024): ") for x in reasons)
    ok = cli("check", "stable-diffusion==1.5", "arcane-style", "--json")
    assert ok.exit_code == 0, ok.output
    assert ok.json()["checked"][0]["levels"] == {"declared": "ok", "structural": "264 of 264 modules fit (shape table)"}


def test_unknown_package_is_bad_input(cli, sparse) -> None:
    r = cli("check", "no-such-model", sparse.get("sd1-lora-kohya"))
    assert r.exit_code == 2 and "no-such-model" in r.stderr and "hubctl search" in r.stderr


def test_missing_path_is_bad_input(cli, tmp_path, sparse) -> None:
    r = cli("check", sparse.get("sd1-ldm"), tmp_path / "nope.safetensors")
    assert r.exit_code == 2 and "no such file" in r.stderr


def test_truncated_adapter_is_bad_input(cli, sparse, tmp_path) -> None:
    f = write_safetensors(tmp_path / "cut.safetensors", {"emb_params": ("F32", [4, 768])})
    Path(f).write_bytes(f.read_bytes()[:-10])
    r = cli("check", sparse.get("sd1-ldm"), f)
    assert r.exit_code == 2 and "incomplete download" in r.stderr


def test_installed_package_is_checked_from_the_store(cli, sparse, tmp_path) -> None:
    """Once installed, a package's files come from the store: its source may be gone."""
    import shutil

    src = tmp_path / "src"
    src.mkdir()
    lora = shutil.copy(sparse.get("sd2-lora-kohya"), src / "style.safetensors")
    reg = tmp_path / "reg"
    (reg / "manifests" / "lora").mkdir(parents=True)
    (reg / "manifests" / "lora" / "sd2-style.toml").write_text(f'''
name = "sd2-style"
kind = "lora"
[[versions]]
version = "1.0"
family = "sd2"
[[versions.variants]]
name = "fp16"
files = [{{ path = "style.safetensors", source = "{Path(lora).as_uri()}" }}]
''')
    assert cli("registry", "add", reg).exit_code == 0
    r = cli("install", "sd2-style")
    assert r.exit_code == 0, r.output
    Path(lora).unlink()
    bad = cli("check", sparse.get("sd1-ldm"), "sd2-style", "--json")
    assert bad.exit_code == 1, bad.output
    reasons = [p["reason"] for p in bad.json()["problems"]]
    assert reasons[0] == "sd2-style 1.0 is declared for SD2; sd1-ldm.safetensors is SD1"
    assert reasons[1].startswith("sd2-style 1.0 is an SD2 LoRA (cross-attention 1024); sd1-ldm.safetensors is SD1 (768)")
    assert "(header)" in bad.json()["checked"][0]["levels"]["structural"]
    assert cli("check", sparse.get("sd2-diffusers"), "sd2-style").exit_code == 0
