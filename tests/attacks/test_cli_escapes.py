"""Terminal escape sequences in data (issue 17 item 5): safetensors metadata and tensor keys (`inspect`),
manifest text (`info`, `search`), names in tables and error lines reach the terminal as visible escapes
(``\\x1b``), never raw: no window title set, no screen cleared, no bidi-reordered line. JSON output stays
JSON (C0 escaped by json, C1 and bidi controls as ``\\u`` escapes) and round-trips to the same strings.

The CLI runs in-process with click's colour on (``color=True``), as on a terminal, so our own colour codes
are there: the checks allow SGR colour sequences (ESC [ ... m) that hubctl writes and nothing else."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.fixtures.sparse import write_safetensors

OSC_TITLE = "\x1b]0;pwned\x07"
CLEAR = "\x1b[2J\x1b[H"
C1_CSI = "\x9b31m"
BIDI = "\u202egnp.exe"
HOSTILE = [OSC_TITLE, CLEAR, C1_CSI, BIDI, "a\rb", "\x08\x08"]
_OUR_SGR = re.compile(r"\x1b\[[0-9;]*m")


def _raw_controls(text: str) -> list[str]:
    """Control characters left in ``text`` once hubctl's own colour codes are taken out."""
    bare = _OUR_SGR.sub("", text)
    return sorted({repr(c) for c in bare if (ord(c) < 0x20 and c not in "\n\t") or 0x7F <= ord(c) < 0xA0 or 0x2066 <= ord(c) <= 0x2069 or 0x202A <= ord(c) <= 0x202E})


@pytest.fixture
def tty_cli():
    """The CLI in-process with colour on, like a terminal (``cli`` strips ANSI codes, as for a pipe)."""
    from typer.testing import CliRunner

    from hubctl.cli.app import app

    runner = CliRunner()

    def run(*args: str, env: dict[str, str] | None = None):
        return runner.invoke(app, [str(a) for a in args], color=True, env=env, catch_exceptions=False)

    return run


def _hostile_safetensors(tmp_path: Path) -> Path:
    meta = {"modelspec.title": OSC_TITLE + "title", "ss_network_module": CLEAR + "networks.lora", "name": C1_CSI + BIDI,
            "ss_sd_model_name": "a\rb"}
    tensors = {f"lora_unet_down{OSC_TITLE}.lora_down.weight": ("F16", (4, 320)), "lora_unet_x\x9b2J.alpha": ("F16", ())}
    return write_safetensors(tmp_path / f"evil{CLEAR}.safetensors", tensors, metadata=meta)


def test_inspect_shows_control_characters_in_metadata_keys_and_paths_as_escapes(tty_cli, tmp_path: Path) -> None:
    path = _hostile_safetensors(tmp_path)
    r = tty_cli("inspect", str(path))
    assert r.exit_code == 0, r.output
    assert _raw_controls(r.stdout + r.stderr) == []
    assert "\\x1b]0;pwned\\x07" in r.stdout and "\\x9b31m" in r.stdout


def test_inspect_json_round_trips_hostile_metadata_with_no_raw_c1_controls(cli, tmp_path: Path) -> None:
    path = _hostile_safetensors(tmp_path)
    r = cli("inspect", str(path), "--json")
    assert r.exit_code == 0, r.output
    assert _raw_controls(r.stdout) == []
    assert r.json()["metadata"]["name"] == C1_CSI + BIDI


def test_an_inspect_error_line_naming_a_hostile_path_is_escaped(tty_cli, tmp_path: Path) -> None:
    bad = tmp_path / f"x{OSC_TITLE}.safetensors"
    bad.write_bytes(b"\x00" * 4)
    ok = _hostile_safetensors(tmp_path)
    r = tty_cli("inspect", str(bad), str(ok))  # several targets: the bad one is an error line, the walk goes on
    assert r.exit_code == 2
    assert _raw_controls(r.stdout + r.stderr) == []
    assert "\\x1b]0;pwned" in r.stderr


@pytest.fixture
def hostile_registry(cli, tmp_path: Path) -> Path:
    reg = tmp_path / "reg"
    (reg / "manifests" / "lora").mkdir(parents=True)
    def esc(s: str) -> str:  # TOML basic strings take JSON's \\u escapes
        return json.dumps(s)

    url = "https://example.org/e" + CLEAR.encode().hex()
    lines = [
        'name = "evil-style"', 'kind = "lora"', f"summary = {esc('evil ' + OSC_TITLE + CLEAR)}",
        f"description = {esc(C1_CSI + BIDI + ' a' + chr(13) + 'b')}", f"authors = [{esc('mallory' + CLEAR)}]",
        f"tags = [{esc('t' + OSC_TITLE)}]", "[[versions]]", 'version = "1.0"', 'family = "sd1"',
        f"trigger = [{esc('evil' + OSC_TITLE)}]", f"notes = {esc(CLEAR)}", "[[versions.variants]]", 'name = "fp16"',
        'files = [{ path = "evil.safetensors", size = 10, sha256 = "' + "a" * 64 + '", source = "' + url + '" }]',
    ]
    (reg / "manifests" / "lora" / "evil-style.toml").write_text("\n".join(lines) + "\n")
    r = cli("registry", "add", str(reg), "--name", "evil")
    assert r.exit_code == 0, r.output
    return reg


@pytest.mark.parametrize("args", [["info", "evil-style"], ["search", "evil"], ["search", ""], ["registry", "list"]],
                         ids=["info", "search", "search-all", "registry-list"])
def test_manifest_text_is_shown_with_control_characters_as_escapes(tty_cli, hostile_registry: Path, args: list[str]) -> None:
    r = tty_cli(*args)
    assert r.exit_code == 0, r.output
    assert _raw_controls(r.stdout + r.stderr) == []


def test_info_shows_the_escapes_so_the_user_sees_something_is_wrong(tty_cli, hostile_registry: Path) -> None:
    r = tty_cli("info", "evil-style")
    assert "\\x1b]0;pwned\\x07" in r.stdout and "\\u202e" in r.stdout


def test_json_output_of_hostile_manifest_text_is_json_with_no_raw_c1_or_bidi(cli, hostile_registry: Path) -> None:
    r = cli("info", "evil-style", "--json")
    assert r.exit_code == 0
    assert _raw_controls(r.stdout) == []
    assert r.json()["description"].startswith(C1_CSI + BIDI)


@pytest.mark.parametrize("arg", ["\x1b]0;pwned\x07", "x\x1b[2J", "\x9b6n"], ids=["osc", "csi", "c1-csi"])
def test_an_error_line_quoting_the_users_argument_is_escaped(tty_cli, arg: str) -> None:
    for args in (["info", arg], ["install", arg], ["check", arg, "y"]):
        r = tty_cli(*args)
        assert r.exit_code in (1, 2), r.output
        assert _raw_controls(r.stdout + r.stderr) == [], args


def test_progress_labels_and_notes_from_data_are_escaped(monkeypatch) -> None:
    import io

    from hubctl.progress import _RichProgress

    buf = io.StringIO()
    monkeypatch.setattr("sys.stderr", buf)
    prog = _RichProgress()
    with prog:
        task = prog.task(f"evil{OSC_TITLE}.safetensors [bold]x", 10)
        task.advance(10)
        prog.note(f"retrying {CLEAR}{C1_CSI}")
    text = buf.getvalue()
    assert _raw_controls(text) == [] and "\\x1b]0;pwned" in text and "[bold]x" in text


def test_names_in_the_installed_table_are_escaped(tty_cli) -> None:
    # an installed record with a hostile name and variant (as a hand-edited lock could make before its reader
    # refuses such names): `list` prints it through the same consoles
    from hubctl.lock.lockfile import LockedFile, LockedPackage
    from hubctl.store.installed import record_installed

    f = LockedFile(path="x.safetensors", url="file:///x", size=1, sha256="b" * 64)
    record_installed([LockedPackage(f"evil{OSC_TITLE}", "1.0", "lora", "sd1", f"fp16{CLEAR}", (f,))])
    r = tty_cli("list")
    assert r.exit_code == 0, r.output
    assert _raw_controls(r.stdout + r.stderr) == [] and "\\x1b]0;pwned" in r.stdout
