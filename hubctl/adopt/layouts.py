"""Which tool a folder belongs to, and where its models are: A1111 / Forge (``models/Stable-diffusion``, ``Lora``,
``LyCORIS``, ``embeddings``, ``ControlNet``, ``VAE``), ComfyUI (``models/checkpoints``, ``loras``, ``embeddings``,
``controlnet``, ``vae``, ``diffusion_models``, ``text_encoders``, ..., plus the folders ``extra_model_paths.yaml``
names) and InvokeAI (``models/<base>/<type>/`` of 3.x, the flat ``models/`` of 4.x). Each model folder comes
with the kind its tool keeps there (a hint: the header decides).

``extra_model_paths.yaml`` is read with PyYAML's safe loader (no tags, no objects), at most 1 MiB, and only the
shape ComfyUI documents is taken: sections of ``base_path`` plus ``folder_name: path`` (several paths one per
line); anything else in it is ignored; a file that is not YAML is BadInput naming it. Reads folder listings and
that one file; writes nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubctl.errors import BadInput

__all__ = ["ModelFolder", "Layout", "detect_layout", "read_extra_model_paths", "YAML_LIMIT"]

YAML_LIMIT = 1 << 20

_A1111 = {"models/Stable-diffusion": "checkpoint", "models/Lora": "lora", "models/LyCORIS": "lora",
          "embeddings": "embedding", "models/ControlNet": "controlnet", "models/VAE": "vae",
          "models/text_encoder": "text_encoder", "models/diffusers": "", "extensions/sd-webui-controlnet/models": "controlnet"}
_COMFY = {"checkpoints": "checkpoint", "loras": "lora", "embeddings": "embedding", "controlnet": "controlnet",
          "vae": "vae", "diffusion_models": "diffusion_model", "unet": "diffusion_model", "text_encoders": "text_encoder",
          "clip": "text_encoder", "t2i_adapter": "controlnet", "diffusers": ""}
_INVOKE_TYPES = {"main": "checkpoint", "lora": "lora", "embedding": "embedding", "controlnet": "controlnet",
                 "vae": "vae", "t2i_adapter": "controlnet"}


@dataclass(frozen=True)
class ModelFolder:
    """A folder of models: where, the kind its tool keeps there ("" when it says nothing), and why we look there."""

    path: Path
    hint: str
    why: str


@dataclass
class Layout:
    """What a folder is: ``tool`` ("a1111", "comfyui", "invokeai" or "folder": none recognised, every file is
    looked at) and its model folders (those that exist)."""

    tool: str
    root: Path
    folders: list[ModelFolder]


def _existing(root: Path, table: dict[str, str], tool: str) -> list[ModelFolder]:
    return [ModelFolder(root / rel, hint, f"{tool} {rel}") for rel, hint in table.items() if (root / rel).is_dir()]


def read_extra_model_paths(path: Path) -> list[ModelFolder]:
    """The model folders ComfyUI's ``extra_model_paths.yaml`` names (relative paths against ``base_path``, and a
    relative ``base_path`` against the file's folder, as ComfyUI reads them)."""
    import yaml

    try:
        with open(path, "rb") as f:
            raw = f.read(YAML_LIMIT + 1)
    except OSError as e:
        raise BadInput(f"cannot read ({e.strerror})", context=str(path)) from None
    if len(raw) > YAML_LIMIT:
        raise BadInput(f"larger than {YAML_LIMIT} bytes; not read", context=str(path))
    try:
        doc = yaml.safe_load(raw.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BadInput(f"not valid YAML ({first})", context=str(path)) from None
    if doc is None:
        return []
    if not isinstance(doc, dict):
        raise BadInput("expected sections of `base_path` and folder paths", context=str(path))
    out: list[ModelFolder] = []
    for section, body in list(doc.items())[:64]:
        if not isinstance(body, dict):
            continue
        base_raw = body.get("base_path", "")
        base = Path(os.path.expanduser(base_raw)) if isinstance(base_raw, str) else Path()
        if not base.is_absolute():
            base = path.parent / base
        for key, value in list(body.items())[:256]:
            if key in ("base_path", "is_default") or not isinstance(key, str) or not isinstance(value, str):
                continue
            for line in value.splitlines()[:64]:
                line = line.strip()
                if not line or "\0" in line:
                    continue
                p = Path(os.path.expanduser(line))
                p = p if p.is_absolute() else base / p
                out.append(ModelFolder(p, _COMFY.get(key, ""), f"extra_model_paths.yaml {section}.{key}"))
    return out


def _models_root(root: Path, marker_dirs: tuple[str, ...]) -> Path | None:
    """``root/models`` when it holds one of ``marker_dirs``; ``root`` itself when it does (the models folder given)."""
    for cand in (root / "models", root):
        if any((cand / d).is_dir() for d in marker_dirs):
            return cand
    return None


def detect_layout(root: Path) -> Layout:
    """The tool ``root`` belongs to and its model folders (BadInput when ``root`` is not a folder)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise BadInput("not a folder", context=str(root))
    root = Path(os.path.abspath(root))
    yaml_file = root / "extra_model_paths.yaml"
    comfy = _models_root(root, ("checkpoints", "loras", "diffusion_models", "text_encoders"))
    if comfy is not None or yaml_file.is_file():
        folders = _existing(comfy, _COMFY, "comfyui") if comfy is not None else []
        if yaml_file.is_file():
            folders += read_extra_model_paths(yaml_file)
        return Layout("comfyui", root, folders)
    a1111 = root if (root / "models" / "Stable-diffusion").is_dir() or (root / "webui.py").is_file() else None
    if a1111 is None and (root / "Stable-diffusion").is_dir():  # the models folder itself
        return Layout("a1111", root, [ModelFolder(root / rel.split("/", 1)[1], hint, f"a1111 {rel}")
                                      for rel, hint in _A1111.items() if rel.startswith("models/") and (root / rel.split("/", 1)[1]).is_dir()])
    if a1111 is not None:
        return Layout("a1111", root, _existing(root, _A1111, "a1111"))
    invoke = _models_root(root, ("sd-1", "sd-2", "sdxl", "any", "flux", "sd-3"))
    if invoke is not None or (root / "invokeai.yaml").is_file():
        models = invoke or (root / "models")
        folders: list[ModelFolder] = []
        if models.is_dir():
            for base in sorted(models.iterdir()):
                if not base.is_dir() or base.name.startswith("."):
                    continue
                types = [t for t in sorted(base.iterdir()) if t.is_dir() and t.name in _INVOKE_TYPES] if base.name in (
                    "sd-1", "sd-2", "sdxl", "sdxl-refiner", "any", "flux", "sd-3") else []
                if types:
                    folders += [ModelFolder(t, _INVOKE_TYPES[t.name], f"invokeai {base.name}/{t.name}") for t in types]
                else:
                    folders.append(ModelFolder(base, "", f"invokeai {base.name}"))
        return Layout("invokeai", root, folders)
    return Layout("folder", root, [ModelFolder(root, "", "folder")])


def describe(layout: Layout) -> dict[str, Any]:
    return {"tool": layout.tool, "root": str(layout.root),
            "folders": [{"path": str(f.path), "hint": f.hint, "why": f.why} for f in layout.folders]}
