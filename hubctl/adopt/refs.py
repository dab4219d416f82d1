"""References read from what people share, as values: which checkpoint, LoRAs, embeddings, VAE and ControlNets an
image or a workflow used (by name, hash, AIR or URL), and the generation settings when they are given.

- a PNG: its text chunks (``tEXt``, ``zTXt``, ``iTXt``) read by a strict chunk walker (no image decoding):
  ``parameters`` (A1111 / Forge infotext), ``hubctl`` (hubctl's own chunk: every file's sha256), ``prompt`` and
  ``workflow`` (ComfyUI);
- A1111 / Forge infotext: ``Model hash`` (AutoV2, or AutoV1), ``VAE hash``, ``Lora hashes``, ``TI hashes``, the
  ``Hashes`` JSON, ``ControlNet N`` models with their ``[hash]``, ``<lora:name:weight>`` in the prompt;
- ComfyUI: an API prompt (``{id: {class_type, inputs}}``) or a UI workflow (``nodes``, and ``models[]`` with
  ``url``/``hash``): loader nodes' file names, and the hashes and URLs ``models[]`` give;
- a list of AIRs (``urn:air:sdxl:lora:civitai:MODEL@VERSION``) or ``civitai:VERSION`` lines.

Everything here is hostile input: a PNG is read up to 64 MiB with at most 16 MiB of text, a compressed chunk
inflates to at most 4 MiB, JSON nests at most 64 levels, at most 512 references; anything over is BadInput (one
line, exit 2). Pure parsing: reads the one file it is given; resolves nothing.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass, field, replace
from typing import Any, Optional

from hubctl.errors import BadInput

__all__ = ["Reference", "Shared", "read_references", "parse_infotext", "parse_comfyui", "parse_air_list",
           "read_png_text", "PNG_LIMIT", "TEXT_LIMIT"]

PNG_LIMIT = 64 << 20
TEXT_LIMIT = 16 << 20
CHUNK_TEXT_LIMIT = 4 << 20
JSON_DEPTH = 64
MAX_REFS = 512
_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_HEXS = re.compile(r"^[0-9a-fA-F]{8,64}$")
_LORA_TAG = re.compile(r"<(lora|lyco):([^:>]{1,200})(?::([-0-9.]{1,12}))?[^>]{0,200}>")
_CN_MODEL = re.compile(r"Model:\s*([^,\[\]]{1,300}?)\s*\[([0-9a-fA-F]{8,64})\]")
_CIVITAI_URL = re.compile(r"/api/download/models/([0-9]{1,12})")
_ROLES = ("checkpoint", "lora", "embedding", "vae", "controlnet", "package")

# ComfyUI loader nodes: class_type -> (input holding the file name, role)
_COMFY_LOADERS = {
    "CheckpointLoaderSimple": ("ckpt_name", "checkpoint"), "CheckpointLoader": ("ckpt_name", "checkpoint"),
    "ImageOnlyCheckpointLoader": ("ckpt_name", "checkpoint"), "UNETLoader": ("unet_name", "checkpoint"),
    "LoraLoader": ("lora_name", "lora"), "LoraLoaderModelOnly": ("lora_name", "lora"),
    "VAELoader": ("vae_name", "vae"), "ControlNetLoader": ("control_net_name", "controlnet"),
    "DiffControlNetLoader": ("control_net_name", "controlnet"),
}
_COMFY_DIRS = {"checkpoints": "checkpoint", "loras": "lora", "vae": "vae", "controlnet": "controlnet",
               "embeddings": "embedding", "diffusion_models": "checkpoint", "unet": "checkpoint"}


@dataclass(frozen=True)
class Reference:
    """One thing a source used. ``role``: checkpoint | lora | embedding | vae | controlnet | package (hubctl's
    chunk: a package by its files). ``hashes``: hex values as given (full or short); ``files``: for a package,
    its files' sha256 by path; ``label``: hubctl's "name version"."""

    role: str
    name: str = ""
    hashes: tuple[str, ...] = ()
    air: str = ""
    civitai_version: Optional[int] = None
    url: str = ""
    weight: Optional[float] = None
    files: tuple[tuple[str, str], ...] = ()
    label: str = ""

    def describe(self) -> str:
        parts = [self.label or self.name] if (self.label or self.name) else ([] if self.hashes or self.air else ["(unnamed)"])
        if self.hashes:
            parts.append("hash " + "/".join(self.hashes))
        if self.air and self.air != self.name:
            parts.append(self.air)
        elif self.civitai_version:
            parts.append(f"civitai version {self.civitai_version}")
        return " ".join(parts)


@dataclass
class Shared:
    """What a source says: its references and, when given, the generation settings (prompt, negative, seed,
    steps, guidance, width, height, sampler; ``loras``: weights by the name the source uses)."""

    kind: str  # "png" | "infotext" | "comfyui" | "air-list" | "hubctl"
    references: list[Reference] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def add(self, ref: Reference) -> None:
        if ref not in self.references:
            if len(self.references) >= MAX_REFS:
                raise BadInput(f"more than {MAX_REFS} references; refused")
            self.references.append(ref)


def _bad(where: str, msg: str) -> BadInput:
    return BadInput(msg, context=where)


# --------------------------------------------------------------------------------------------- PNG


def read_png_text(data: bytes, where: str) -> dict[str, str]:
    """The text chunks of a PNG (keyword -> text), walked chunk by chunk with every length bounded."""
    if not data.startswith(_PNG_SIG):
        raise _bad(where, "not a PNG file")
    pos, out, total, count = len(_PNG_SIG), {}, 0, 0
    while pos + 8 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        count += 1
        if count > 100_000:
            raise _bad(where, "more than 100000 PNG chunks; refused")
        body_end = pos + 8 + length
        if body_end + 4 > len(data):
            raise _bad(where, f"PNG chunk {ctype!r} runs past the end of the file (truncated)")
        body = data[pos + 8:body_end]
        pos = body_end + 4
        if ctype == b"IEND":
            break
        if ctype not in (b"tEXt", b"zTXt", b"iTXt"):
            continue
        total += length
        if total > TEXT_LIMIT:
            raise _bad(where, f"more than {TEXT_LIMIT} bytes of PNG text; refused")
        key, text = _text_chunk(ctype, body, where)
        if key and key not in out:
            out[key] = text
    return out


def _inflate(data: bytes, where: str) -> bytes:
    d = zlib.decompressobj()
    try:
        out = d.decompress(data, CHUNK_TEXT_LIMIT + 1)
    except zlib.error:
        raise _bad(where, "a compressed PNG text chunk does not decompress") from None
    if len(out) > CHUNK_TEXT_LIMIT or d.unconsumed_tail:
        raise _bad(where, f"a compressed PNG text chunk inflates past {CHUNK_TEXT_LIMIT} bytes; refused")
    return out


def _text_chunk(ctype: bytes, body: bytes, where: str) -> tuple[str, str]:
    key, sep, rest = body.partition(b"\0")
    if not sep or not 1 <= len(key) <= 79:
        return "", ""
    keyword = key.decode("latin-1")
    if ctype == b"tEXt":
        return keyword, rest.decode("latin-1")
    if ctype == b"zTXt":
        if not rest or rest[0] != 0:
            return "", ""
        return keyword, _inflate(rest[1:], where).decode("latin-1")
    if len(rest) < 2:
        return "", ""
    flag, method, rest = rest[0], rest[1], rest[2:]
    _lang, _, rest = rest.partition(b"\0")
    _translated, _, text = rest.partition(b"\0")
    if flag == 1:
        if method != 0:
            return "", ""
        text = _inflate(text, where)
    return keyword, text.decode("utf-8", errors="replace")


# --------------------------------------------------------------------------------------------- A1111


def _hex(value: str) -> Optional[str]:
    v = value.strip().strip('"').strip()
    return v.lower() if _HEXS.match(v) else None


def _pairs(text: str) -> list[tuple[str, str]]:
    """``"a: 0123abcd, b: 4567ef01"`` -> [(a, 0123abcd), ...] (names may hold ':' only before the last one)."""
    out = []
    for part in text.split(","):
        name, sep, h = part.rpartition(":")
        if sep and name.strip():
            out.append((name.strip()[:300], h.strip()))
    return out


def parse_infotext(text: str, where: str = "parameters") -> Shared:
    """References and settings of an A1111 / Forge "parameters" text."""
    from hubctl.run.pngmeta import parse_a1111_parameters

    if len(text) > TEXT_LIMIT:
        raise _bad(where, f"more than {TEXT_LIMIT} characters; refused")
    p = parse_a1111_parameters(text)
    sh = Shared("infotext")
    model_hash = _hex(p.get("Model hash", ""))
    if model_hash:
        sh.add(Reference("checkpoint", name=p.get("Model", "")[:300], hashes=(model_hash,)))
    elif p.get("Model"):
        sh.add(Reference("checkpoint", name=p["Model"][:300]))
    if _hex(p.get("VAE hash", "")):
        sh.add(Reference("vae", name=p.get("VAE", "")[:300], hashes=(_hex(p["VAE hash"]),)))  # type: ignore[arg-type]
    weights = {m.group(2).strip(): float(m.group(3)) for m in _LORA_TAG.finditer(p.get("Prompt", "")) if m.group(3)
               and re.match(r"^-?[0-9]+(\.[0-9]+)?$", m.group(3))}
    for key, role in (("Lora hashes", "lora"), ("TI hashes", "embedding")):
        for name, h in _pairs(p.get(key, "")):
            hx = _hex(h)
            sh.add(Reference(role, name=name, hashes=(hx,) if hx else (), weight=weights.get(name) if role == "lora" else None))
    raw = p.get("Hashes", "")
    if raw:
        from hubctl.sources.civitai import loads_json

        doc = loads_json(raw.encode("utf-8", "replace"), f"{where}: Hashes", depth_limit=4, error=BadInput)
        if isinstance(doc, dict):
            for k, v in list(doc.items())[:MAX_REFS]:
                hx = _hex(v) if isinstance(v, str) else None
                if not hx or not isinstance(k, str):
                    continue
                kind, _, name = k.partition(":")
                role = {"model": "checkpoint", "vae": "vae", "lora": "lora", "lyco": "lora", "embed": "embedding"}.get(kind)
                if role and not any(r.role == role and hx in r.hashes for r in sh.references):
                    sh.add(Reference(role, name=name[:300], hashes=(hx,), weight=weights.get(name) if role == "lora" else None))
    for k, v in p.items():
        if k.startswith("ControlNet"):
            for m in _CN_MODEL.finditer(v):
                sh.add(Reference("controlnet", name=m.group(1).strip(), hashes=(m.group(2).lower(),)))
    sh.settings = _settings(p)
    if weights:
        sh.settings["loras"] = weights
    return sh


def _settings(p: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"prompt": p.get("Prompt", ""), "negative": p.get("Negative prompt", "")}
    for key, name, cast in (("Seed", "seed", int), ("Steps", "steps", int), ("CFG scale", "guidance", float)):
        try:
            out[name] = cast(p[key])
        except (KeyError, ValueError):
            pass
    m = re.match(r"^\s*([0-9]{1,5})x([0-9]{1,5})\s*$", p.get("Size", ""))
    if m:
        out["width"], out["height"] = int(m.group(1)), int(m.group(2))
    if p.get("Sampler"):
        out["sampler"] = p["Sampler"][:64]
    return out


# --------------------------------------------------------------------------------------------- hubctl's chunk


def parse_hubctl_chunk(doc: Any, where: str) -> Shared:
    """hubctl's own chunk: every package of the run by "name version" with its files' sha256."""
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), dict):
        raise _bad(where, "the hubctl chunk has no 'files' table")
    sh = Shared("hubctl")
    loras = doc.get("loras") if isinstance(doc.get("loras"), dict) else {}
    for label, files in list(doc["files"].items())[:MAX_REFS]:
        if not isinstance(label, str) or not isinstance(files, dict):
            continue
        pairs = tuple(sorted((str(k)[:1024], v.lower()) for k, v in list(files.items())[:4096]
                             if isinstance(v, str) and re.match(r"^[0-9a-fA-F]{64}$", v)))
        if not pairs:
            continue
        name = label.rsplit(" ", 1)[0]
        w = loras.get(name)
        sh.add(Reference("package", name=name[:300], label=label[:300], files=pairs,
                         weight=float(w) if isinstance(w, (int, float)) and not isinstance(w, bool) else None))
    if isinstance(loras, dict):
        sh.settings["loras"] = {k: float(v) for k, v in loras.items() if isinstance(k, str) and isinstance(v, (int, float))}
    if isinstance(doc.get("seed"), int):
        sh.settings["seed"] = doc["seed"]
    return sh


# --------------------------------------------------------------------------------------------- ComfyUI


def _model_entry(sh: Shared, m: Any) -> None:
    if not isinstance(m, dict):
        return
    name = m.get("name") if isinstance(m.get("name"), str) else ""
    role = _COMFY_DIRS.get(str(m.get("directory") or ""), "checkpoint")
    h = _hex(m["hash"]) if isinstance(m.get("hash"), str) else None
    url = m.get("url") if isinstance(m.get("url"), str) else ""
    cv = _CIVITAI_URL.search(url) if url else None
    sh.add(Reference(role, name=name[:300], hashes=(h,) if h else (), url=url[:2048],
                     civitai_version=int(cv.group(1)) if cv else None))


def parse_comfyui(doc: Any, where: str) -> Shared:
    """References of a ComfyUI API prompt or UI workflow (loader nodes' files, ``models[]`` hashes and URLs)."""
    sh = Shared("comfyui")
    nodes: list[tuple[str, dict[str, Any]]] = []
    if isinstance(doc, dict) and isinstance(doc.get("nodes"), list):  # UI workflow
        for n in doc["nodes"][:100_000]:
            if not isinstance(n, dict):
                continue
            ctype = n.get("type")
            widgets = n.get("widgets_values")
            if isinstance(ctype, str) and ctype in _COMFY_LOADERS and isinstance(widgets, list) and widgets:
                nodes.append((ctype, {_COMFY_LOADERS[ctype][0]: widgets[0],
                                      **({"strength_model": widgets[1]} if ctype == "LoraLoader" and len(widgets) > 1 else {})}))
            props = n.get("properties")
            if isinstance(props, dict) and isinstance(props.get("models"), list):
                for m in props["models"][:MAX_REFS]:
                    _model_entry(sh, m)
        for m in (doc.get("models") or [])[:MAX_REFS] if isinstance(doc.get("models"), list) else []:
            _model_entry(sh, m)
    elif isinstance(doc, dict):  # API prompt
        for node in list(doc.values())[:100_000]:
            if isinstance(node, dict) and isinstance(node.get("class_type"), str) and isinstance(node.get("inputs"), dict):
                nodes.append((node["class_type"], node["inputs"]))
    else:
        raise _bad(where, "not a ComfyUI prompt or workflow (expected a JSON object)")
    for ctype, inputs in nodes:
        spec = _COMFY_LOADERS.get(ctype)
        if spec is None:
            continue
        value = inputs.get(spec[0])
        if not isinstance(value, str) or not value:
            continue
        w = inputs.get("strength_model")
        weight = float(w) if isinstance(w, (int, float)) and not isinstance(w, bool) else None
        same = next((i for i, r in enumerate(sh.references) if r.name == value[:300]), None)
        if same is None:
            sh.add(Reference(spec[1], name=value[:300], weight=weight))
        elif sh.references[same].weight is None and weight is not None:  # models[] named it: the node gives its weight
            sh.references[same] = replace(sh.references[same], weight=weight)
    return sh


# --------------------------------------------------------------------------------------------- AIRs


def parse_air_list(text: str, where: str) -> Shared:
    """One AIR (or ``civitai:VERSION``) per line; blank lines and ``#`` comments skipped."""
    from hubctl.sources.civitai import KIND_BY_TYPE, parse_air

    sh = Shared("air-list")
    for i, line in enumerate(text.splitlines()[:100_000], 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("civitai:"):
            m = re.match(r"^civitai:([1-9][0-9]{0,11})$", line)
            if not m:
                raise _bad(where, f"line {i}: '{line[:80]}' is not civitai:VERSION_ID")
            sh.add(Reference("package", name=line, civitai_version=int(m.group(1))))
            continue
        try:
            air = parse_air(line)
        except BadInput as e:
            raise _bad(where, f"line {i}: {e.message}") from None
        role = KIND_BY_TYPE.get(air.type.replace("_", ""), "package")
        sh.add(Reference(role, name=air.text, air=air.text, civitai_version=air.version_id))
    return sh


# --------------------------------------------------------------------------------------------- the way in


def _json(data: bytes, where: str) -> Any:
    from hubctl.sources.civitai import loads_json

    return loads_json(data, where, depth_limit=JSON_DEPTH, error=BadInput)


def read_references(data: bytes, where: str) -> Shared:
    """What ``data`` (a file's bytes, named ``where``) used: a PNG, a JSON workflow or prompt, a list of AIRs, or
    A1111 infotext. BadInput (exit 2, naming ``where``) for anything else or anything over the limits."""
    try:
        return _read(data, where)
    except BadInput as e:
        if where in str(e):
            raise
        raise e.with_context(where) from None


def _read(data: bytes, where: str) -> Shared:
    if data.startswith(_PNG_SIG):
        if len(data) > PNG_LIMIT:
            raise _bad(where, f"larger than {PNG_LIMIT} bytes; refused")
        text = read_png_text(data, where)
        sh = Shared("png")
        if "hubctl" in text:
            sub = parse_hubctl_chunk(_json(text["hubctl"].encode("utf-8", "replace"), f"{where}: hubctl chunk"), where)
            sh.references += sub.references
            sh.settings.update(sub.settings)
            sh.kind = "hubctl"
        if "parameters" in text:
            sub = parse_infotext(text["parameters"], f"{where}: parameters")
            if sh.kind != "hubctl":
                sh.references += sub.references
            loras = sh.settings.get("loras")
            sh.settings.update(sub.settings)
            if loras is not None:
                sh.settings["loras"] = loras
        if sh.kind not in ("hubctl",) and ("prompt" in text or "workflow" in text):
            key = "workflow" if "workflow" in text else "prompt"
            sub = parse_comfyui(_json(text[key].encode("utf-8", "replace"), f"{where}: {key}"), where)
            if "prompt" in text and key == "workflow":
                extra = parse_comfyui(_json(text["prompt"].encode("utf-8", "replace"), f"{where}: prompt"), where)
                sub.references += [r for r in extra.references if r.name not in {x.name for x in sub.references}]
            sh.references += [r for r in sub.references if r not in sh.references]
            sh.kind = "comfyui" if sh.kind == "png" else sh.kind
        if not sh.references:
            raise _bad(where, "a PNG with no parameters, hubctl, prompt or workflow text: nothing to import")
        return sh
    if len(data) > TEXT_LIMIT:
        raise _bad(where, f"larger than {TEXT_LIMIT} bytes; refused")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad(where, "neither a PNG nor UTF-8 text") from None
    head = text.lstrip()[:1]
    if head in ("{", "["):
        doc = _json(data, where)
        if isinstance(doc, dict) and isinstance(doc.get("files"), dict) and "lock_digest" in doc:
            return parse_hubctl_chunk(doc, where)
        return parse_comfyui(doc, where)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if lines and all(ln.startswith(("urn:air:", "civitai:")) for ln in lines):
        return parse_air_list(text, where)
    if not text.strip():
        raise _bad(where, "empty: nothing to import")
    sh = parse_infotext(text, where)
    if not sh.references:
        raise _bad(where, "names no model, LoRA, embedding, VAE or ControlNet (not A1111 parameters, a ComfyUI "
                          "workflow or a list of AIRs)")
    return sh
