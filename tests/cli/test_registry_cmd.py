"""The registry commands, search and info, driven through the CLI as a user would: real registry folders on
disk, a real SQLite index under HUBCTL_HOME, and a real HTTP server on 127.0.0.1 for a URL registry.

The bad-manifest cases each check what the user sees (one line naming the file, the field and the problem,
exit 2, no traceback) and that nothing changed: registries.toml is untouched and the previous index still
answers a search."""

from __future__ import annotations

import json
from pathlib import Path
from textwrap import dedent

import pytest

GOOD_LORA = dedent(
    """\
    name = "paper-cut"
    kind = "lora"
    summary = "Paper-cut style"
    license = "mit"
    [[versions]]
    version = "1.0"
    family = "sd1"
    requires = ["stable-diffusion>=1.4,<2"]
    trigger = ["papercut"]
    [[versions.variants]]
    name = "fp16"
    dtype = "fp16"
    files = [{ path = "papercut.safetensors", size = 151108831, sha256 = "%s", source = "https://example.org/api/download/models/1" }]
    """
) % ("ab" * 32)


def make_registry(root: Path, manifests: dict[str, str], families: str | None = None) -> Path:
    """A registry folder: ``manifests`` maps 'kind/name.toml' to its text."""
    for rel, text in manifests.items():
        p = root / "manifests" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, "utf-8")
    if families is not None:
        (root / "families.toml").write_text(families, "utf-8")
    return root


def one_line_error(result) -> str:  # type: ignore[no-untyped-def]
    assert "Traceback" not in result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


# --------------------------------------------------------------------------------------------- bad input

# (case id, relative path, manifest text, the field the message must name, words of the problem)
BAD_CASES = [
    ("bad-toml", "lora/paper-cut.toml", 'name = "paper-cut"\nkind = lora\n', "invalid TOML", "line 2"),
    ("bad-version", "lora/paper-cut.toml", GOOD_LORA.replace('version = "1.0"', 'version = "not a version!"'),
     "versions[0].version", "is not a PEP 440 version"),
    ("unknown-kind", "lora/paper-cut.toml", GOOD_LORA.replace('kind = "lora"', 'kind = "hypernetwork"'),
     "kind", "'hypernetwork' is not one of"),
    ("unknown-family", "lora/paper-cut.toml", GOOD_LORA.replace('family = "sd1"', 'family = "sd9"'),
     "versions[0].family", "unknown family 'sd9'"),
    ("sha256-short", "lora/paper-cut.toml", GOOD_LORA.replace("ab" * 32, "ab" * 31),
     "versions[0].variants[0].files[0].sha256", "got 62 characters"),
    ("path-dotdot", "lora/paper-cut.toml", GOOD_LORA.replace('path = "papercut.safetensors"', 'path = "../../etc/passwd"'),
     "versions[0].variants[0].files[0].path", "escapes its package with '..'"),
    ("path-absolute", "lora/paper-cut.toml", GOOD_LORA.replace('path = "papercut.safetensors"', 'path = "/etc/passwd"'),
     "versions[0].variants[0].files[0].path", "is an absolute path"),
    ("duplicate-versions", "lora/paper-cut.toml",
     GOOD_LORA + GOOD_LORA[GOOD_LORA.index("[[versions]]"):].replace('version = "1.0"', 'version = "1.0.0"'),
     "versions[1].version", "duplicates '1.0'"),
    ("unknown-scheme", "lora/paper-cut.toml", GOOD_LORA.replace("https://example.org/api/download/models/1", "ftp://example.org/x"),
     "versions[0].variants[0].files[0].source", "unknown URL scheme 'ftp'"),
    ("bad-requires", "lora/paper-cut.toml", GOOD_LORA.replace('"stable-diffusion>=1.4,<2"', '"stable-diffusion>>1.4"'),
     "versions[0].requires", "is not a requirement"),
    ("unknown-field", "lora/paper-cut.toml", GOOD_LORA.replace('license = "mit"', 'licence = "mit"'),
     "licence", "unknown field"),
    ("kind-folder-mismatch", "embedding/paper-cut.toml", GOOD_LORA, "kind", "does not match its folder 'embedding'"),
    ("name-file-mismatch", "lora/paper-cutter.toml", GOOD_LORA, "name", "does not match its file name 'paper-cutter'"),
    ("missing-field", "lora/paper-cut.toml", GOOD_LORA.replace('kind = "lora"\n', ""), "kind", "required field is missing"),
    ("unknown-kind-folder", "widgets/paper-cut.toml", GOOD_LORA, "kind folder 'widgets'", "is not one of"),
]


@pytest.mark.parametrize("case", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_manifest_on_add_is_one_line_exit_2_and_changes_nothing(cli, tmp_path, hubctl_home, case) -> None:
    _, rel, text, field, problem = case
    assert cli("search", "stable-diffusion").exit_code == 0  # a previous index exists
    reg = make_registry(tmp_path / "bad-reg", {rel: text})
    before = sorted(p.name for p in hubctl_home.iterdir())

    r = cli("registry", "add", str(reg))

    assert r.exit_code == 2
    line = one_line_error(r)
    assert str(reg / "manifests" / rel) in line
    assert field in line and problem in line, line
    assert not (hubctl_home / "registries.toml").exists()
    assert sorted(p.name for p in hubctl_home.iterdir()) == before  # no temp db left behind
    s = cli("search", "stable-diffusion", "--json")
    assert s.exit_code == 0 and s.stderr == ""
    assert [row["name"] for row in s.json()][0] == "stable-diffusion"


def test_manifest_broken_after_add_fails_update_and_search_keeps_the_old_index(cli, tmp_path, hubctl_home) -> None:
    reg = make_registry(tmp_path / "mine", {"lora/paper-cut.toml": GOOD_LORA})
    assert cli("registry", "add", str(reg), "--name", "mine").exit_code == 0
    db = hubctl_home / "index.db"
    before = db.read_bytes()
    manifest = reg / "manifests" / "lora" / "paper-cut.toml"
    manifest.write_text(GOOD_LORA.replace('version = "1.0"', 'version = "1.0-final-final"'))

    r = cli("registry", "update")

    assert r.exit_code == 2
    line = one_line_error(r)
    assert line.startswith("error: ") and str(manifest) in line and "versions[0].version" in line
    assert db.read_bytes() == before
    s = cli("search", "paper", "--json")
    assert s.exit_code == 0
    assert [row["name"] for row in s.json()] == ["paper-cut"]
    assert "using the previous index" in s.stderr and str(manifest) in s.stderr
    # fixed: the next command compiles again and the warning is gone
    manifest.write_text(GOOD_LORA.replace("Paper-cut style", "Paper-cut style, fixed"))
    s = cli("search", "paper", "--json")
    assert s.stderr == "" and s.json()[0]["summary"] == "Paper-cut style, fixed"


def test_bad_families_file_names_the_file_and_field(cli, tmp_path) -> None:
    reg = make_registry(tmp_path / "fam", {"lora/paper-cut.toml": GOOD_LORA}, families='[[families]]\nid = "x"\ncross_attention_dim = -1\ntext_encoder_widths=[1]\ntext_encoder_layers=[1]\n')
    r = cli("registry", "add", str(reg))
    assert r.exit_code == 2
    line = one_line_error(r)
    assert str(reg / "families.toml") in line and "families[0].cross_attention_dim" in line


def test_duplicate_package_within_one_registry_is_refused(cli, tmp_path) -> None:
    reg = make_registry(tmp_path / "dup", {"lora/paper-cut.toml": GOOD_LORA, "lora/paper_cut.toml": GOOD_LORA.replace('"paper-cut"', '"paper_cut"')})
    r = cli("registry", "add", str(reg))
    assert r.exit_code == 2
    assert "defined twice" in one_line_error(r)


# --------------------------------------------------------------------------------------------- registry commands


def test_registry_add_list_remove_round_trip(cli, tmp_path, hubctl_home) -> None:
    fams = dedent(
        """\
        [[families]]
        id = "tiny1"
        title = "Tiny family"
        cross_attention_dim = 32
        text_encoder_widths = [32]
        text_encoder_layers = [2]
        """
    )
    tiny = GOOD_LORA.replace('family = "sd1"', 'family = "tiny1"').replace('"paper-cut"', '"tiny-style"')
    reg = make_registry(tmp_path / "tinyhub", {"lora/tiny-style.toml": tiny}, families=fams)

    r = cli("registry", "add", str(reg), "--json")
    assert r.exit_code == 0, r.output
    assert r.json() == {"name": "tinyhub", "location": str(reg.resolve()), "kind": "folder", "packages": 1}
    assert cli("registry", "add", str(reg), "--json").exit_code == 0  # same again: no-op

    listing = cli("registry", "list", "--json").json()
    assert [(e["name"], e["kind"]) for e in listing] == [("default", "bundled"), ("tinyhub", "folder")]
    assert listing[1]["packages"] == 1 and listing[0]["packages"] >= 15
    assert [p["name"] for p in cli("search", "--family", "tiny1", "--json").json()] == ["tiny-style"]
    text = cli("registry", "list").stdout
    assert "tinyhub" in text and str(reg.resolve()) in text

    r = cli("registry", "remove", "tinyhub")
    assert r.exit_code == 0 and "removed registry tinyhub" in r.stdout
    assert [e["name"] for e in cli("registry", "list", "--json").json()] == ["default"]
    assert cli("search", "tiny-style", "--json").json() == []
    r = cli("search", "--family", "tiny1")
    assert r.exit_code == 2 and "unknown family 'tiny1'" in one_line_error(r)


def test_default_registry_cannot_be_removed_and_unknown_names_are_bad_input(cli) -> None:
    r = cli("registry", "remove", "default")
    assert r.exit_code == 2 and "cannot be removed" in one_line_error(r)
    r = cli("registry", "remove", "nope")
    assert r.exit_code == 2 and "no registry named 'nope'" in one_line_error(r)
    r = cli("registry", "update", "nope")
    assert r.exit_code == 2 and "no registry named 'nope'" in one_line_error(r)


def test_add_a_folder_that_is_not_a_registry_is_refused(cli, tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    r = cli("registry", "add", str(tmp_path / "empty"))
    assert r.exit_code == 2 and "is not a registry folder" in one_line_error(r)
    r = cli("registry", "add", str(tmp_path / "missing"))
    assert r.exit_code == 2 and "does not exist" in one_line_error(r)
    r = cli("registry", "add", "ftp://example.org/index.json")
    assert r.exit_code == 2 and "unknown scheme 'ftp'" in one_line_error(r)


def test_registry_build_then_add_by_path_and_by_url(cli, tmp_path, http_server) -> None:
    reg = make_registry(tmp_path / "src", {"lora/paper-cut.toml": GOOD_LORA})
    out = tmp_path / "site" / "index.json"
    r = cli("registry", "build", str(reg), "--out", str(out), "--json")
    assert r.exit_code == 0, r.output
    assert r.json()["manifests"] == 1
    doc = json.loads(out.read_text())
    assert doc["hubctl-index"] == 1 and doc["manifests"][0]["name"] == "paper-cut"

    r = cli("registry", "add", str(out), "--name", "built", "--json")
    assert r.exit_code == 0 and r.json()["kind"] == "file" and r.json()["packages"] == 1
    cli("registry", "remove", "built")

    url = http_server.add_file("/hub/index.json", out.read_bytes())
    r = cli("registry", "add", url, "--name", "web", "--json")
    assert r.exit_code == 0, r.output
    assert r.json() == {"name": "web", "location": url, "kind": "url", "packages": 1}
    info = cli("info", "paper-cut", "--json").json()
    assert info["registry"] == "web" and info["versions"][0]["trigger"] == ["papercut"]

    # the server publishes a new index: update fetches it
    doc["manifests"][0]["summary"] = "Paper-cut style v2"
    http_server.add_file("/hub/index.json", json.dumps(doc).encode())
    r = cli("registry", "update", "web", "--json")
    assert r.exit_code == 0 and r.json()[0]["packages"] == 1
    assert cli("search", "paper", "--json").json()[0]["summary"] == "Paper-cut style v2"

    # a bad index on the server: update fails with exit 2, the cached copy and index stay
    doc["manifests"][0]["versions"][0]["version"] = "x.y"
    http_server.add_file("/hub/index.json", json.dumps(doc).encode())
    r = cli("registry", "update", "web")
    assert r.exit_code == 2
    line = one_line_error(r)
    assert url in line and "manifests[0] (paper-cut)" in line and "versions[0].version" in line
    assert cli("search", "paper", "--json").json()[0]["summary"] == "Paper-cut style v2"


def test_unreachable_url_registry_exits_3_and_adds_nothing(cli, http_server, hubctl_home) -> None:
    r = cli("registry", "add", http_server.url_for("/missing/index.json"), "--name", "gone")
    assert r.exit_code == 3
    assert "404 Not Found" in one_line_error(r)
    assert not (hubctl_home / "registries.toml").exists()


def test_build_refuses_a_bad_folder_and_writes_nothing(cli, tmp_path) -> None:
    reg = make_registry(tmp_path / "src", {"lora/paper-cut.toml": GOOD_LORA.replace("ab" * 32, "zz" * 32)})
    out = tmp_path / "index.json"
    r = cli("registry", "build", str(reg), "--out", str(out))
    assert r.exit_code == 2 and "sha256" in one_line_error(r)
    assert not out.exists()


# --------------------------------------------------------------------------------------------- search / info


def test_search_ranks_the_exact_name_first_and_filters_by_kind_and_family(cli) -> None:
    rows = cli("search", "stable-diffusion", "--json").json()
    assert rows[0]["name"] == "stable-diffusion"
    assert {"stable-diffusion-base", "stable-diffusion-inpainting"} <= {r["name"] for r in rows}
    loras_sd2 = cli("search", "--kind", "lora", "--family", "sd2", "--json").json()
    assert loras_sd2 and all(r["kind"] == "lora" and "sd2" in r["families"] for r in loras_sd2)
    by_token = cli("search", "<ugly-sonic>", "--json").json()
    assert [r["name"] for r in by_token] == ["ugly-sonic"]


def test_search_with_no_match_exits_0_and_says_so(cli) -> None:
    r = cli("search", "no-such-thing-anywhere")
    assert r.exit_code == 0
    assert r.stdout == "" and r.stderr.strip() == "no packages match 'no-such-thing-anywhere'"
    r = cli("search", "no-such-thing-anywhere", "--json")
    assert r.exit_code == 0 and r.json() == []


def test_search_with_unknown_kind_is_bad_input(cli) -> None:
    r = cli("search", "x", "--kind", "hypernetwork")
    assert r.exit_code == 2 and "--kind: 'hypernetwork' is not one of" in one_line_error(r)


def test_search_table_shows_one_line_per_package(cli) -> None:
    r = cli("search", "controlnet", "--kind", "controlnet")
    lines = r.stdout.splitlines()
    assert lines[0].split()[:4] == ["name", "kind", "latest", "families"]
    assert any(ln.startswith("controlnet-canny ") and " 1.1 " in ln and "sd1" in ln for ln in lines)
    assert len(lines) == 1 + len(cli("search", "controlnet", "--kind", "controlnet", "--json").json())


def test_info_shows_versions_families_fits_files_and_sizes(cli) -> None:
    r = cli("info", "stable-diffusion")
    assert r.exit_code == 0
    text = r.stdout
    for want in ("2.1", "2.0", "1.5", "1.4", "v_prediction", "epsilon", "cross-attention 1024",
                 "v1-5-pruned-emaonly.safetensors", "3.97 GiB", "6ce0161689", "hf://stable-diffusion-v1-5/"):
        assert want in text, want
    assert text.index("\n2.1") < text.index("\n1.4")  # newest first
    lora = cli("info", "diffusiondb-pixelart-lora").stdout
    assert "fits: stable-diffusion>=2.1,<3" in lora and "3.26 MiB" in lora and "licence: creativeml-openrail-m" in lora
    emb = cli("info", "ugly-sonic==1.0").stdout
    assert "tokens: <ugly-sonic>" in emb and "\n2.0" not in emb


def test_info_json_carries_every_version_with_sizes_and_autov2(cli) -> None:
    d = cli("info", "Stable_Diffusion", "--json").json()  # PEP 503: any spelling finds it
    assert d["name"] == "stable-diffusion" and d["registry"] == "default"
    assert [v["version"] for v in d["versions"]] == ["2.1", "2.0", "1.5", "1.4"]
    v15 = d["versions"][2]
    assert v15["family"] == "sd1" and v15["prediction"] == "epsilon"
    fp32 = next(v for v in v15["variants"] if v["name"] == "fp32")
    assert fp32["size"] == 4265146304 and fp32["files"][0]["autov2"] == "6ce0161689"


def test_info_of_unknown_package_exits_1_with_a_suggestion(cli) -> None:
    r = cli("info", "stable-difusion")
    assert r.exit_code == 1
    assert "no package named 'stable-difusion'" in one_line_error(r) and "stable-diffusion" in r.stderr


def test_info_with_a_malformed_name_exits_2(cli) -> None:
    r = cli("info", "stable diffusion!!")
    assert r.exit_code == 2 and "is not a package name" in one_line_error(r)


def test_info_with_a_specifier_matching_nothing_exits_1(cli) -> None:
    r = cli("info", "stable-diffusion>=9")
    assert r.exit_code == 1 and "no version matching '>=9'" in one_line_error(r)


def test_info_of_a_base_lists_the_adapters_declared_for_each_version(cli) -> None:
    d = cli("info", "stable-diffusion", "--json").json()
    adapters = {v["version"]: v["adapters"] for v in d["versions"]}
    assert "diffusiondb-pixelart-lora 1.0" in adapters["2.1"]  # requires stable-diffusion>=2.1,<3
    assert "diffusiondb-pixelart-lora 1.0" not in adapters["2.0"]
    assert "controlnet-canny 1.1" in adapters["1.5"] and not any(a.startswith("controlnet-canny") for a in adapters["2.1"])
    base = {v["version"]: v["adapters"] for v in cli("info", "stable-diffusion-base", "--json").json()["versions"]}
    assert "ugly-sonic 2.0" in base["2.1"] and "sd-clevr-sg2im 1.0" not in base["2.1"]  # declared for stable-diffusion
    assert "adapters: 11 declared for it" in cli("info", "stable-diffusion==1.5").stdout


def test_a_manifest_outside_a_kind_folder_is_named(cli, tmp_path) -> None:
    reg = make_registry(tmp_path / "flat", {"lora/paper-cut.toml": GOOD_LORA})
    (reg / "manifests" / "README.md").write_text("notes")  # fine
    (reg / "manifests" / "paper-cut.toml").write_text(GOOD_LORA)  # not fine
    r = cli("registry", "add", str(reg))
    assert r.exit_code == 2
    line = one_line_error(r)
    assert str(reg / "manifests" / "paper-cut.toml") in line and "manifests/<kind>/<name>.toml" in line
    (reg / "manifests" / "paper-cut.toml").unlink()
    assert cli("registry", "add", str(reg)).exit_code == 0


def test_adding_a_registry_that_shadows_a_package_warns_and_keeps_the_first(cli, tmp_path) -> None:
    clash = GOOD_LORA.replace('"paper-cut"', '"pokemon-lora"')
    reg = make_registry(tmp_path / "clash", {"lora/pokemon-lora.toml": clash, "lora/paper-cut.toml": GOOD_LORA})
    r = cli("registry", "add", str(reg), "--name", "clash")
    assert r.exit_code == 0
    assert "warning: package 'pokemon-lora' of registry 'clash' is shadowed by registry 'default'" in r.stderr
    assert cli("info", "pokemon-lora", "--json").json()["registry"] == "default"
    assert cli("search", "paper", "--json").stderr == ""  # said once, at add time, not on every search


def test_a_registry_url_with_credentials_is_refused_and_the_secret_is_not_echoed(cli, hubctl_home) -> None:
    r = cli("registry", "add", "https://user:s3cret-pass@example.org/index.json?token=hf_abcdefghijklmnop")
    assert r.exit_code == 2
    line = one_line_error(r)
    assert "must not carry credentials" in line
    assert "s3cret-pass" not in r.output and "hf_abcdefghijklmnop" not in r.output
    assert not (hubctl_home / "registries.toml").exists()


def test_info_shows_a_version_licence_that_differs_from_the_package(cli) -> None:
    text = cli("info", "easynegative").stdout
    assert "  licence: other" in text  # the package's
    v2 = text[text.index("\n2.0"):text.index("\n1.0")]
    assert "licence: creativeml-openrail-m" in v2 and "tokens: EasyNegativeV2" in v2
    assert "from https://civitai.com/api/download/models/9208" in text
