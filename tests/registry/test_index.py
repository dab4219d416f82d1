"""The index library API (open_index, Index, registries): compiled into a real SQLite file under HUBCTL_HOME,
rebuilt only when a registry changed, atomically replaced, and readable without SQLAlchemy."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from hubctl.errors import BadInput
from hubctl.registry.families import FamilyTable, default_families
from hubctl.registry.index import Index
from hubctl.registry.compile import build_index_file, rebuild_index, write_index_db
from hubctl.registry.manage import add_registry, open_index, remove_registry
from hubctl.registry.manifest import Manifest
from hubctl.registry.configured import list_registries
from tests.cli.test_registry_cmd import GOOD_LORA, make_registry


def built_at(db: Path) -> tuple[int, int]:
    st = db.stat()
    return st.st_ino, st.st_mtime_ns


def test_open_index_compiles_once_and_answers_the_api(hubctl_home: Path) -> None:
    idx = open_index()
    db = hubctl_home / "index.db"
    assert idx.path == db and db.exists()
    assert isinstance(idx.get("stable-diffusion"), Manifest)
    assert idx.get("Stable_Diffusion") is idx.get("stable-diffusion")  # PEP 503, cached
    assert idx.get("no-such-package") is None
    names = idx.names()
    assert names == sorted(names) and "stable-diffusion" in names and len(idx) == len(names)
    assert idx.registry_of("STABLE.diffusion") == "default"
    with pytest.raises(KeyError):
        idx.registry_of("no-such-package")
    assert [m.name for m in idx] == names
    assert "sd2" in idx.families and idx.families.get("sd1").cross_attention_dim == 768
    hits = idx.search("canny", kind="controlnet", family="sd2")
    assert [m.name for m in hits] == ["controlnet-sd21-canny"]
    assert all(isinstance(m, Manifest) for m in hits)
    stamp = built_at(db)
    idx2 = open_index()
    assert built_at(db) == stamp and idx2.warnings == []


def test_a_changed_manifest_triggers_a_rebuild_and_an_unchanged_one_does_not(hubctl_home: Path, tmp_path: Path) -> None:
    reg = make_registry(tmp_path / "mine", {"lora/paper-cut.toml": GOOD_LORA})
    add_registry(str(reg), "mine")
    db = hubctl_home / "index.db"
    stamp = built_at(db)
    assert open_index().get("paper-cut").summary == "Paper-cut style"
    assert built_at(db) == stamp
    f = reg / "manifests" / "lora" / "paper-cut.toml"
    f.write_text(GOOD_LORA.replace("Paper-cut style", "Paper-cut style 2"))
    os.utime(f, ns=(stamp[1] + 10**9, stamp[1] + 10**9))
    idx = open_index()
    assert idx.get("paper-cut").summary == "Paper-cut style 2"
    assert built_at(db) != stamp


def test_a_new_manifest_file_is_picked_up(tmp_path: Path) -> None:
    reg = make_registry(tmp_path / "mine", {"lora/paper-cut.toml": GOOD_LORA})
    add_registry(str(reg), "mine")
    make_registry(reg, {"lora/stone-cut.toml": GOOD_LORA.replace('"paper-cut"', '"stone-cut"')})
    assert "stone-cut" in open_index()


def test_strict_rebuild_of_a_bad_registry_raises_and_leaves_the_old_file(hubctl_home: Path, tmp_path: Path) -> None:
    reg = make_registry(tmp_path / "mine", {"lora/paper-cut.toml": GOOD_LORA})
    add_registry(str(reg), "mine")
    db = hubctl_home / "index.db"
    before = db.read_bytes()
    (reg / "manifests" / "lora" / "paper-cut.toml").write_text(GOOD_LORA.replace('family = "sd1"', 'family = "sd7"'))
    with pytest.raises(BadInput, match=r"paper-cut\.toml: versions\[0\]\.family: unknown family 'sd7'"):
        open_index(strict=True)
    assert db.read_bytes() == before
    idx = open_index()  # lenient: the previous index answers, with the reason as a warning
    assert idx.get("paper-cut") is not None
    assert len(idx.warnings) == 1 and "unknown family 'sd7'" in idx.warnings[0]
    assert sorted(p.name for p in hubctl_home.iterdir() if p.name.startswith(".index.db")) == []


def test_a_crash_while_writing_leaves_the_previous_index_and_no_temp_file(hubctl_home: Path) -> None:
    idx = open_index()
    db = idx.path
    before = db.read_bytes()
    good = idx.get("stable-diffusion")

    def packages():
        yield "default", good
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write_index_db(db, default_families(), packages())
    assert db.read_bytes() == before
    assert [p.name for p in db.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_registry_families_merge_and_manifests_are_checked_against_them(tmp_path: Path) -> None:
    fams = '[[families]]\nid = "tiny1"\ncross_attention_dim = 32\ntext_encoder_widths = [32]\ntext_encoder_layers = [2]\n'
    tiny = GOOD_LORA.replace('family = "sd1"', 'family = "tiny1"').replace('"paper-cut"', '"tiny-style"')
    reg_a = make_registry(tmp_path / "a", {"lora/tiny-style.toml": tiny}, families=fams)
    add_registry(str(reg_a), "a")
    idx = open_index()
    assert idx.families.ids() == ["sd1", "sd2", "sdxl", "tiny1"]
    assert idx.get("tiny-style").versions[0].family == "tiny1"
    # a second registry may use the first one's family
    reg_b = make_registry(tmp_path / "b", {"lora/tiny-two.toml": tiny.replace('"tiny-style"', '"tiny-two"')})
    add_registry(str(reg_b), "b")
    assert open_index().get("tiny-two") is not None


def test_the_first_registry_wins_a_name_clash_with_a_warning(tmp_path: Path) -> None:
    clash = GOOD_LORA.replace('"paper-cut"', '"stable-diffusion"').replace('kind = "lora"', 'kind = "checkpoint"')
    reg = make_registry(tmp_path / "clash", {"checkpoint/stable-diffusion.toml": clash})
    add_registry(str(reg), "clash")
    idx = rebuild_index()
    assert idx.registry_of("stable-diffusion") == "default"
    assert idx.warnings == ["package 'stable-diffusion' of registry 'clash' is shadowed by registry 'default'"]
    assert [r["packages"] for r in idx.registries()][1] == 0


def test_list_add_remove_registries_api(tmp_path: Path, hubctl_home: Path) -> None:
    assert [e.name for e in list_registries()] == ["default"]
    reg = make_registry(tmp_path / "mine", {"lora/paper-cut.toml": GOOD_LORA})
    e = add_registry(str(reg))
    assert (e.name, e.kind, e.location) == ("mine", "folder", str(reg.resolve()))
    assert add_registry(str(reg)) == e  # idempotent
    with pytest.raises(BadInput, match="already registered as 'mine'"):
        add_registry(str(reg), "other")
    assert [x.name for x in list_registries()] == ["default", "mine"]
    text = (hubctl_home / "registries.toml").read_text()
    assert 'name = "mine"' in text and str(reg.resolve()) in text
    remove_registry("mine")
    assert [x.name for x in list_registries()] == ["default"]
    assert "paper-cut" not in open_index()


def test_a_broken_registries_file_is_one_line_bad_input(hubctl_home: Path) -> None:
    (hubctl_home / "registries.toml").write_text("[[registries]]\nname = 'x'\nlocation = 3\nkind = 'folder'\n")
    with pytest.raises(BadInput, match=r"registries\.toml: registries\[0\]\.location"):
        list_registries()


def test_a_removed_registry_folder_keeps_the_previous_index_with_a_warning(tmp_path: Path) -> None:
    import shutil

    reg = make_registry(tmp_path / "mine", {"lora/paper-cut.toml": GOOD_LORA})
    add_registry(str(reg), "mine")
    shutil.rmtree(reg)
    idx = open_index()
    assert "paper-cut" in idx and "registry folder does not exist" in idx.warnings[0]


def test_build_index_file_round_trips_through_a_file_registry(tmp_path: Path) -> None:
    reg = make_registry(tmp_path / "src", {"lora/paper-cut.toml": GOOD_LORA})
    out = tmp_path / "index.json"
    assert build_index_file(reg, out) == (0, 1)
    add_registry(str(out), "built")
    idx = open_index()
    assert idx.registry_of("paper-cut") == "built"
    assert idx.get("paper-cut").versions[0].variants[0].files[0].sha256 == "ab" * 32


def test_write_index_db_batches_many_generated_manifests(tmp_path: Path) -> None:
    base = open_index().get("pokemon-lora")
    many = (("gen", base.model_copy(update={"name": f"gen-{i:05d}"})) for i in range(12000))
    db = write_index_db(tmp_path / "big.db", FamilyTable(default_families()), many, batch=5000)
    idx = Index(db)
    assert len(idx) == 12000
    assert idx.get("GEN_01234").name == "gen-01234"
    assert idx.registry_of("gen-11999") == "gen"
    plan = sqlite3.connect(db).execute("EXPLAIN QUERY PLAN SELECT manifest FROM index_package WHERE name = 'x'").fetchall()
    assert "USING INDEX" in str(plan) or "PRIMARY KEY" in str(plan)


def test_the_read_path_does_not_import_sqlalchemy_or_pydantic_for_search(hubctl_home: Path) -> None:
    open_index()  # compiled
    code = (
        "import sys; from hubctl.registry.manage import open_index; idx = open_index(); rows = idx.search_rows('canny');"
        "assert rows, rows; heavy = [m for m in ('sqlalchemy', 'sqlmodel', 'pydantic', 'torch') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    env = {**os.environ, "HUBCTL_HOME": str(hubctl_home)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert r.stdout.strip() == ""


def test_each_family_remembers_the_registry_that_declared_it(tmp_path: Path) -> None:
    fams = '[[families]]\nid = "tiny1"\ncross_attention_dim = 32\ntext_encoder_widths = [32]\ntext_encoder_layers = [2]\n'
    tiny = GOOD_LORA.replace('family = "sd1"', 'family = "tiny1"').replace('"paper-cut"', '"tiny-style"')
    add_registry(str(make_registry(tmp_path / "a", {"lora/tiny-style.toml": tiny}, families=fams)), "a")
    idx = open_index()
    assert (idx.family_registry("sd1"), idx.family_registry("tiny1"), idx.family_registry("zz")) == ("default", "a", None)


def test_a_corrupt_or_foreign_index_file_is_rebuilt(hubctl_home: Path) -> None:
    db = hubctl_home / "index.db"
    db.write_bytes(b"this is not sqlite" * 100)
    assert open_index().get("stable-diffusion") is not None
    con = sqlite3.connect(db)
    con.execute("UPDATE index_meta SET value = '0' WHERE key = 'format'")  # an index from another hubctl version
    con.commit()
    con.close()
    stamp = built_at(db)
    assert open_index().get("stable-diffusion") is not None and built_at(db) != stamp


def test_concurrent_first_opens_all_get_a_whole_index(hubctl_home: Path) -> None:
    code = "from hubctl.registry.manage import open_index; idx = open_index(); print(len(idx), idx.get('stable-diffusion').name)"
    env = {**os.environ, "HUBCTL_HOME": str(hubctl_home)}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    assert len({o[0] for o in outs}) == 1 and outs[0][0].split()[1] == "stable-diffusion"
    assert [p.name for p in hubctl_home.iterdir() if p.name.endswith(".tmp")] == []
