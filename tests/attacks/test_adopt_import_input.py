"""Hostile input to `hubctl import`: PNG text and JSON are untrusted. Each case must end in one line naming the
file and the problem, exit 2 (bad input) or 1 (a name it will not guess), no traceback, and nothing written."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import pytest

_SIG = b"\x89PNG\r\n\x1a\n"


def _chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body) & 0xFFFFFFFF)


def _png(*chunks: bytes) -> bytes:
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
    idat = _chunk(b"IDAT", zlib.compress(b"\0\0\0\0"))
    return _SIG + ihdr + b"".join(chunks) + idat + _chunk(b"IEND", b"")


def _text(key: str, value: str) -> bytes:
    return _chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1", "replace"))


def _bomb(n: int) -> bytes:
    z = zlib.compressobj(9)
    out = b""
    block = b"\0" * (1 << 20)
    for _ in range(n >> 20):
        out += z.compress(block)
    return out + z.flush()


CASES = {
    "truncated-chunk": (lambda: _SIG + struct.pack(">I", 1 << 30) + b"tEXt" + b"parameters\0x", 2, "truncated"),
    "ztxt-bomb": (lambda: _png(_chunk(b"zTXt", b"parameters\0\0" + _bomb(64 << 20))), 2, "inflates past"),
    "itxt-bomb": (lambda: _png(_chunk(b"iTXt", b"prompt\0\1\0\0\0" + _bomb(64 << 20))), 2, "inflates past"),
    "deep-prompt-json": (lambda: _png(_text("prompt", "[" * 100_000 + "]" * 100_000)), 2, "nested deeper"),
    "deep-hubctl-chunk": (lambda: _png(_text("hubctl", '{"files":' + "[" * 5000 + "]" * 5000 + "}")), 2, "nested deeper"),
    "too-much-text": (lambda: _png(*[_text(f"k{i}", "x" * (1 << 20)) for i in range(17)]), 2, "bytes of PNG text"),
    "not-png-binary": (lambda: b"\xff\xfe\x00garbage" * 10, 2, "neither a PNG nor UTF-8"),
    "png-without-text": (lambda: _png(), 2, "nothing to import"),
    "hubctl-chunk-without-files": (lambda: _png(_text("hubctl", '{"files": 3}')), 2, "no 'files' table"),
    "too-many-references": (lambda: ("cat\nSteps: 2, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 8x8, Lora hashes: \""
                                     + ", ".join(f"l{i}: {i:012x}" for i in range(600)) + "\"").encode(), 2, "more than 512 references"),
    "json-number-too-long": (lambda: ('{"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ' + "9" * 10000 + "}}}").encode(),
                             2, "not valid JSON"),
    "json-not-an-object": (lambda: b'[1, 2, 3]', 2, "not a ComfyUI prompt or workflow"),
    "air-malformed": (lambda: b"urn:air:sd1:lora:civitai:12@\n", 2, "line 1"),
    "empty": (lambda: b"   \n", 2, "empty"),
    "words-only": (lambda: b"hello there\n", 2, "names no model"),
    "path-in-a-loader-name": (lambda: json.dumps({"1": {"class_type": "CheckpointLoaderSimple",
                                                       "inputs": {"ckpt_name": "../../../../etc/passwd"}}}).encode(), 1, "not guessed|no adopted file"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_import_input_is_one_line_and_writes_nothing(case, cli, tmp_path):
    make, code, words = CASES[case]
    src = tmp_path / "in.bin"
    src.write_bytes(make())
    out = tmp_path / "project"
    out.mkdir()
    r = cli("import", src, "--dir", out, "--no-civitai")
    assert r.exit_code == code, (r.exit_code, r.output)
    assert "Traceback" not in r.output
    import re

    assert re.search(words, r.stderr), r.stderr
    if code == 2:
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert str(src) in r.stderr
    assert list(out.iterdir()) == []


def test_a_png_larger_than_the_limit_is_refused_without_reading_it_all(cli, tmp_path):
    from hubctl.adopt.refs import PNG_LIMIT

    src = tmp_path / "huge.png"
    with open(src, "wb") as f:
        f.write(_SIG)
        f.truncate(PNG_LIMIT + 10)
    r = cli("import", src, "--dir", tmp_path, "--no-civitai")
    assert r.exit_code == 2 and "larger than" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_import_reads_stdin(cli, tmp_path):
    r = cli("import", "-", "--dir", tmp_path, "--no-civitai", input="urn:air:sd1:lora:civitai:1@2\n")
    assert r.exit_code == 1 and "Civitai not asked" in r.stderr
    assert not (tmp_path / "hubctl.toml").exists()


def test_control_characters_in_names_are_escaped_on_the_terminal(cli, tmp_path):
    src = tmp_path / "p.txt"
    src.write_text('cat\nSteps: 2, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 8x8, Lora hashes: "evil\x1b[2J: 0123456789ab"\n')
    r = cli("import", src, "--dir", tmp_path, "--no-civitai")
    assert r.exit_code == 1
    assert "\x1b" not in r.stderr and "evil" in r.stderr


def test_a_png_with_text_after_iend_is_not_read_past_it(cli, tmp_path):
    src = tmp_path / "x.png"
    src.write_bytes(_png() + _text("parameters", "cat\nSteps: 2, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 8x8, Model hash: 0123456789"))
    r = cli("import", src, "--dir", tmp_path, "--no-civitai")
    assert r.exit_code == 2 and "nothing to import" in r.stderr


def test_pillow_written_png_text_round_trips(tmp_path):
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from hubctl.adopt.refs import read_png_text

    info = PngInfo()
    info.add_text("parameters", "héllo", zip=True)
    info.add_itxt("prompt", "{\"a\": \"ü\"}", zip=True)
    buf = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buf, format="PNG", pnginfo=info)
    assert read_png_text(buf.getvalue(), "x") == {"parameters": "héllo", "prompt": '{"a": "ü"}'}


def test_infotext_forms_a1111_and_forge_write(tmp_path):
    from hubctl.adopt.refs import parse_infotext

    text = ('a <lora:detail:0.5> cat\nNegative prompt: ugly\nSteps: 20, Sampler: DPM++ 2M, Schedule type: Karras, '
            'CFG scale: 7, Seed: 42, Size: 512x768, Model hash: 6ce0161689, Model: v1-5, VAE hash: 735e4c3a44, '
            'VAE: vae-ft-mse, ControlNet 0: "Module: canny, Model: control_v11p_sd15_canny [d14c016b], Weight: 1.0", '
            'Lora hashes: "detail: 62a5bf8b9f5d", TI hashes: "easyneg: c74b4e810b03, bad: 0123456789ab", '
            'Hashes: "{\\"model\\": \\"6ce0161689\\", \\"lora:extra\\": \\"aabbccddeeff\\"}", Version: f2.0.1')
    sh = parse_infotext(text)
    got = sorted((r.role, r.name, r.hashes) for r in sh.references)
    assert got == sorted([
        ("checkpoint", "v1-5", ("6ce0161689",)), ("vae", "vae-ft-mse", ("735e4c3a44",)),
        ("lora", "detail", ("62a5bf8b9f5d",)), ("embedding", "easyneg", ("c74b4e810b03",)),
        ("embedding", "bad", ("0123456789ab",)), ("lora", "extra", ("aabbccddeeff",)),
        ("controlnet", "control_v11p_sd15_canny", ("d14c016b",)),
    ])
    assert sh.settings["seed"] == 42 and (sh.settings["width"], sh.settings["height"]) == (512, 768)
    assert sh.settings["loras"] == {"detail": 0.5}
    assert Path(tmp_path).is_dir()
