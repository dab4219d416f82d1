"""The project file (hubctl.toml, [tool.hubctl] in pyproject.toml) and inline script blocks: reading,
one-line errors naming the file and field, and in-place edits that keep the user's comments."""

from __future__ import annotations

import sys

import pytest

from hubctl.errors import BadInput
from hubctl.lock.project import (
    Settings,
    find_project,
    parse_inline_block,
    read_project_file,
    read_script,
    with_added,
    with_removed,
    write_requires,
)
from tests._asserts import bad_input_line

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def test_hubctl_toml_is_read_with_its_settings(tmp_path):
    f = tmp_path / "hubctl.toml"
    f.write_text('requires = ["stable-diffusion>=1.4,<2", "arcane-style"]\n[settings]\ndtype = "FP16"\nvram = "10GiB"\npre = true\n')
    p = read_project_file(f)
    assert p.kind == "hubctl.toml" and p.requires == ("stable-diffusion>=1.4,<2", "arcane-style")
    assert p.settings == Settings(dtype="fp16", vram="10GiB", pre=True)
    assert p.settings.vram_bytes == 10 * 1024**3
    assert p.lock_path == tmp_path / "hubctl.lock"


def test_tool_hubctl_in_pyproject_is_found_from_a_subfolder(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.hubctl]\nrequires = ["demo-sd<2"]\n[tool.hubctl.settings]\ndtype = "bf16"\n')
    sub = tmp_path / "src" / "pkg"
    sub.mkdir(parents=True)
    p = find_project(sub)
    assert p is not None and p.kind == "pyproject.toml" and p.path == tmp_path / "pyproject.toml"
    assert p.requires == ("demo-sd<2",) and p.settings.dtype == "bf16"


def test_a_pyproject_without_tool_hubctl_is_not_a_project(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert find_project(tmp_path) is None


def test_hubctl_toml_wins_over_a_parent_pyproject(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.hubctl]\nrequires = ["a"]\n')
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "hubctl.toml").write_text('requires = ["b"]\n')
    assert find_project(tmp_path / "sub").requires == ("b",)


@pytest.mark.parametrize(
    "text,expected",
    [
        ('requires = ["demo-sd<2"\n', "invalid TOML"),
        ('requires = "demo-sd"\n', "requires: 'demo-sd' is not a list of requirement strings"),
        ('requires = ["demo-sd<<2"]\n', "requires[0]: 'demo-sd<<2' is not a requirement"),
        ('requires = [3]\n', "requires[0]: 3 is not a string"),
        ('require = ["demo-sd"]\n', "require: unknown field"),
        ('requires = []\n[settings]\ndtype = "fp61"\n', "settings.dtype: 'fp61' is not one of: fp32, fp16, bf16"),
        ('requires = []\n[settings]\nvram = "lots"\n', "settings.vram: 'lots' is not a size like '10GiB'"),
        ('requires = []\n[settings]\npre = "yes"\n', "settings.pre: 'yes' is not true or false"),
        ('requires = []\n[settings]\ncolour = "red"\n', "settings.colour: unknown setting"),
        ('requires = ["x[extra]"]\n', "requires[0]: 'x[extra]': extras are not supported"),
    ],
)
def test_a_malformed_project_file_is_one_line_naming_file_and_field(tmp_path, text, expected):
    f = tmp_path / "hubctl.toml"
    f.write_text(text)
    msg = bad_input_line(lambda: read_project_file(f), f)
    assert expected in msg, msg


# ------------------------------------------------------------------ inline blocks


SCRIPT = '''\
#!/usr/bin/env python
# /// hubctl
# requires = ["stable-diffusion>=1.4,<2", "arcane-style"]
# [settings]
# dtype = "fp16"
# ///
import hubctl
print(hubctl.paths())
'''


def test_an_inline_block_is_read_like_pep_723(tmp_path):
    s = tmp_path / "s.py"
    s.write_text(SCRIPT)
    p = read_script(s)
    assert p.kind == "script" and p.requires == ("stable-diffusion>=1.4,<2", "arcane-style")
    assert p.settings.dtype == "fp16"
    assert p.lock_path == tmp_path / "s.py.lock"


def test_tool_hubctl_inside_a_pep_723_script_block_is_read():
    text = '# /// script\n# dependencies = ["rich"]\n# [tool.hubctl]\n# requires = ["demo-sd"]\n# ///\n'
    assert parse_inline_block(text)[0] == ("demo-sd",)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("print('hi')\n", "has no '# /// hubctl' block"),
        ("# /// hubctl\n# requires = ['a']\nprint(1)\n", "the '# /// hubctl' block at line 1 is not closed"),
        ("x = 1\n# /// hubctl\n# requires = [\n# ///\n", "the '# /// hubctl' block at line 2 is not valid TOML"),
        ("# /// hubctl\n# requires = ['a']\n# ///\n# /// hubctl\n# requires = ['b']\n# ///\n", "more than one '# /// hubctl' block"),
        ("# /// hubctl\n# requires = ['a']\n# dtype = 'fp16'\n# ///\n", "hubctl block.dtype: unknown field"),
        ("# /// hubctl\n# requires = ['a b']\n# ///\n", "hubctl block.requires[0]: 'a b' is not a requirement"),
    ],
)
def test_a_malformed_inline_block_is_one_line_naming_the_script(tmp_path, text, expected):
    s = tmp_path / "s.py"
    s.write_text(text)
    msg = bad_input_line(lambda: read_script(s), s)
    assert expected in msg, msg


# ------------------------------------------------------------------ editing in place


def test_add_and_remove_rewrite_only_the_requires_array(tmp_path):
    f = tmp_path / "hubctl.toml"
    original = '# my project\nrequires = [\n    "demo-sd<2",  # the base\n    "demo-style",\n]\n\n[settings]\ndtype = "fp16"  # keep\n'
    f.write_text(original)
    p = with_added(read_project_file(f), ["demo-token", "demo-sd>=1.4,<2"])
    assert p.requires == ("demo-sd>=1.4,<2", "demo-style", "demo-token")  # same name: replaced in place
    write_requires(p)
    text = f.read_text()
    assert text.startswith("# my project\n") and 'dtype = "fp16"  # keep\n' in text
    assert tomllib.loads(text)["requires"] == ["demo-sd>=1.4,<2", "demo-style", "demo-token"]
    write_requires(with_removed(read_project_file(f), ["Demo_Style"]))
    assert read_project_file(f).requires == ("demo-sd>=1.4,<2", "demo-token")
    assert read_project_file(f).settings.dtype == "fp16"


def test_editing_tool_hubctl_leaves_the_rest_of_pyproject_alone(tmp_path):
    f = tmp_path / "pyproject.toml"
    f.write_text('[project]\nname = "x"\ndependencies = ["requests"]\n\n[tool.hubctl]\nrequires = ["a"]\n\n[tool.other]\nrequires = ["zzz"]\n')
    write_requires(with_added(read_project_file(f), ["b"]))
    data = tomllib.loads(f.read_text())
    assert data["tool"]["hubctl"]["requires"] == ["a", "b"]
    assert data["tool"]["other"]["requires"] == ["zzz"] and data["project"]["dependencies"] == ["requests"]


def test_a_new_project_file_is_created_by_add(tmp_path):
    from hubctl.lock.project import new_project

    p = with_added(new_project(tmp_path), ["demo-sd<2"])
    write_requires(p)
    assert (tmp_path / "hubctl.toml").read_text() == 'requires = [\n    "demo-sd<2",\n]\n'


def test_removing_a_package_the_project_does_not_require_is_bad_input(tmp_path):
    f = tmp_path / "hubctl.toml"
    f.write_text('requires = ["demo-sd"]\n')
    with pytest.raises(BadInput, match="'demo-style' is not in requires"):
        with_removed(read_project_file(f), ["demo-style"])


@pytest.mark.parametrize(
    "name,before",
    [
        ("hubctl.toml", "requires = ['demo-sd<2', \"x\"]  # a comment with ] and \"quotes\"\n[settings]\ndtype = 'fp16'\n"),
        ("hubctl.toml", 'requires = [ "demo-sd<2", # ] tricky\n   "x" ]\n\n# trailing comment\n'),
        ("hubctl.toml", '# only settings so far\n[settings]\nvram = "10GiB"\n'),
        ("hubctl.toml", ""),
        ("pyproject.toml", '[project]\nname = "p"\n\n[tool.hubctl]\n# hubctl config\n\n[tool.hubctl.settings]\npre = true\n'),
        ("pyproject.toml", '[tool.hubctl]\nrequires = ["x"]\n[tool.hubctl.settings]\ndtype = "bf16"\n[tool.ruff]\nline-length = 120\n'),
    ],
)
def test_requires_edits_survive_tricky_formatting(tmp_path, name, before):
    f = tmp_path / name
    f.write_text(before)
    p = read_project_file(f) if before else None
    if p is None:
        from hubctl.lock.project import new_project

        p = new_project(tmp_path)
    old_settings = p.settings
    added = with_added(p, ["demo-token>=1", "x==2"])
    write_requires(added)
    again = read_project_file(f)
    assert again.requires == added.requires and again.settings == old_settings
    for line in before.splitlines():
        if line.startswith("#") or line.startswith("[") or "=" in line and "requires" not in line and not line.startswith(" "):
            assert line in f.read_text(), line  # comments, headers and other keys are kept as written
    write_requires(with_removed(again, ["x"]))
    assert "x" not in [r.split("=")[0] for r in read_project_file(f).requires]
    assert read_project_file(f).settings == old_settings
