"""PNG metadata: the A1111 "parameters" chunk (parsed with A1111's own pattern) and the hubctl chunk."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from PIL import Image

from hubctl.run.pngmeta import a1111_parameters, parse_a1111_parameters, pixel_sha256, read_png_chunks, write_png


def _params(**kw):
    base = dict(prompt="a castle, at night", negative="blurry, low quality", steps=30, sampler="DPM++ 2M", cfg=7.0,
                seed=1234567890, width=512, height=768, model_hash="6ce0161689")
    base.update(kw)
    return a1111_parameters(**base)


def test_parameters_text_has_a1111_shape_and_parses_back():
    text = _params(model="stable-diffusion 1.5", lora_hashes={"arcane-style": "a1b2c3d4e5", "other": "0011223344"})
    lines = text.split("\n")
    assert lines[0] == "a castle, at night"
    assert lines[1] == "Negative prompt: blurry, low quality"
    assert lines[2].startswith("Steps: 30, Sampler: DPM++ 2M, CFG scale: 7, Seed: 1234567890, Size: 512x768, Model hash: 6ce0161689")
    p = parse_a1111_parameters(text)
    assert p["Prompt"] == "a castle, at night" and p["Negative prompt"] == "blurry, low quality"
    assert p["Lora hashes"] == "arcane-style: a1b2c3d4e5, other: 0011223344"  # quoted because it has commas
    assert p["Model"] == "stable-diffusion 1.5" and p["CFG scale"] == "7"


def test_parameters_without_negative_and_with_fractional_cfg():
    text = _params(negative="", cfg=6.5)
    assert "Negative prompt" not in text
    p = parse_a1111_parameters(text)
    assert p["Negative prompt"] == "" and p["CFG scale"] == "6.5" and p["Seed"] == "1234567890"


def test_multiline_prompt_and_quotes_survive():
    text = _params(prompt='line one\nline "two"', extra={"ControlNet": "canny, v1.1"})
    p = parse_a1111_parameters(text)
    assert p["Prompt"] == 'line one\nline "two"'
    assert p["ControlNet"] == "canny, v1.1"


def test_png_carries_both_chunks_and_pixel_hash_ignores_metadata(tmp_path: Path):
    im = Image.new("RGB", (16, 8), (10, 20, 30))
    im.putpixel((3, 4), (255, 0, 0))
    a = tmp_path / "a.png"
    b = tmp_path / "b.png"
    sha_a = write_png(a, im, _params(), {"lock_digest": "x" * 64, "files": {"demo": {"f": "0" * 64}}})
    sha_b = write_png(b, im, _params(seed=1), {"lock_digest": "y" * 64})
    assert sha_a == hashlib.sha256(a.read_bytes()).hexdigest() and sha_a != sha_b
    ca, cb = read_png_chunks(a), read_png_chunks(b)
    assert ca["hubctl"]["lock_digest"] == "x" * 64 and ca["hubctl"]["files"] == {"demo": {"f": "0" * 64}}
    assert parse_a1111_parameters(ca["parameters"])["Seed"] == "1234567890"
    assert ca["pixel_sha256"] == cb["pixel_sha256"] == pixel_sha256(im)
    with Image.open(a) as re:  # any PNG reader sees the plain text chunks
        assert "parameters" in re.text and json.loads(re.text["hubctl"])["lock_digest"] == "x" * 64


def test_pixel_hash_changes_with_one_pixel():
    im = Image.new("RGB", (8, 8))
    other = im.copy()
    other.putpixel((0, 0), (0, 0, 1))
    assert pixel_sha256(im) != pixel_sha256(other)


def test_png_of_another_tool_without_chunks_reads_as_none(tmp_path: Path):
    p = tmp_path / "plain.png"
    Image.new("RGB", (4, 4)).save(p)
    c = read_png_chunks(p)
    assert c["parameters"] is None and c["hubctl"] is None
