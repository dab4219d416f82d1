"""PNG metadata for generated images: the A1111-style "parameters" text chunk other tools read, plus a
"hubctl" chunk with the provenance (lock digest, every file's sha256, library versions, device, attention).

Owns formatting/parsing those chunks, writing the PNG atomically, and the image hashes (the pixel hash is
what replays compare; the file hash changes with the metadata). Needs only Pillow; never imports torch.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path
from typing import Any, Mapping

__all__ = ["a1111_parameters", "parse_a1111_parameters", "write_png", "read_png_chunks", "pixel_sha256"]


def _fmt_num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _quote(v: str) -> str:
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


def a1111_parameters(
    *, prompt: str, negative: str = "", steps: int, sampler: str, cfg: float, seed: int, width: int, height: int,
    model_hash: str, model: str = "", lora_hashes: Mapping[str, str] | None = None, ti_hashes: Mapping[str, str] | None = None,
    extra: Mapping[str, str] | None = None, version: str = "",
) -> str:
    """The text A1111 writes in its "parameters" chunk: prompt, "Negative prompt: ...", then one line of
    ``Key: value`` pairs (values with commas quoted, as A1111 does)."""
    lines = [prompt]
    if negative:
        lines.append(f"Negative prompt: {negative}")
    pairs: list[tuple[str, str]] = [
        ("Steps", str(steps)), ("Sampler", sampler), ("CFG scale", _fmt_num(cfg)), ("Seed", str(seed)),
        ("Size", f"{width}x{height}"), ("Model hash", model_hash),
    ]
    if model:
        pairs.append(("Model", model))
    if lora_hashes:
        pairs.append(("Lora hashes", _quote(", ".join(f"{k}: {v}" for k, v in lora_hashes.items()))))
    if ti_hashes:
        pairs.append(("TI hashes", _quote(", ".join(f"{k}: {v}" for k, v in ti_hashes.items()))))
    for k, v in (extra or {}).items():
        pairs.append((k, _quote(v) if ("," in v or ":" in v) else v))
    if version:
        pairs.append(("Version", version))
    lines.append(", ".join(f"{k}: {v}" for k, v in pairs))
    return "\n".join(lines)


# A1111's own pattern (modules/infotext_utils.py re_param_code)
_RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def parse_a1111_parameters(text: str) -> dict[str, str]:
    """Parse a "parameters" chunk the way A1111 does: {"Prompt", "Negative prompt", "Steps", ...}."""
    lines = text.strip().split("\n")
    last = lines[-1] if len(_RE_PARAM.findall(lines[-1])) >= 3 else ""
    body = lines[:-1] if last else lines
    prompt, negative, in_neg = [], [], False
    for line in body:
        if line.startswith("Negative prompt:"):
            in_neg = True
            line = line[len("Negative prompt:"):].strip()
        (negative if in_neg else prompt).append(line)
    out: dict[str, str] = {"Prompt": "\n".join(prompt), "Negative prompt": "\n".join(negative)}
    for k, v in _RE_PARAM.findall(last):
        v = v.strip()
        if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
            try:
                v = json.loads(v)
            except ValueError:  # as A1111's unquote: a quoted value that is not JSON stays as it is
                pass
        out[k.strip()] = v
    return out


def pixel_sha256(image: Any) -> str:
    """sha256 over the decoded pixels (mode, size, bytes): equal for equal images whatever the PNG chunks."""
    h = hashlib.sha256()
    h.update(f"{image.mode}:{image.size[0]}x{image.size[1]}:".encode())
    h.update(image.tobytes())
    return h.hexdigest()


def png_bytes(image: Any, parameters: str, hubctl: Mapping[str, Any]) -> bytes:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("parameters", parameters)
    # top-level keys sorted; nested values keep their order (``loras``: the order they were applied in)
    info.add_text("hubctl", json.dumps(dict(sorted(hubctl.items())), separators=(",", ":")))
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def write_png(path: Path, image: Any, parameters: str, hubctl: Mapping[str, Any]) -> str:
    """Write the PNG atomically; return the file's sha256."""
    from hubctl.fsutil import atomic_write_bytes

    data = png_bytes(image, parameters, hubctl)
    atomic_write_bytes(Path(path), data)
    return hashlib.sha256(data).hexdigest()


def read_png_chunks(path: Path) -> dict[str, Any]:
    """{"parameters": str, "hubctl": dict, "pixel_sha256": str} of a PNG hubctl (or another tool) wrote."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        text = dict(getattr(im, "text", {}) or {})
        pix = pixel_sha256(im.convert("RGB") if im.mode not in ("RGB", "RGBA", "L") else im)
    raw = text.get("hubctl")
    return {"parameters": text.get("parameters"), "hubctl": json.loads(raw) if raw else None, "pixel_sha256": pix}
