"""Local artefacts: a ``.safetensors`` file, a diffusers folder (every component's header plus its
config.json, scheduler/scheduler_config.json and model_index.json) or a single-component folder.
Reads headers and small JSON files only."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

from hubctl.errors import BadInput
from hubctl.probe.header import Header, TensorInfo, open_regular, read_header, read_tensor_bytes

__all__ = ["read_folder", "read_file_set", "read_scalars", "FolderRead", "COMPONENT_CLASSES"]

_MAX_JSON = 4 << 20
COMPONENT_CLASSES = {
    "UNet2DConditionModel": "unet", "ControlNetModel": "controlnet", "CLIPTextModel": "text_encoder",
    "CLIPTextModelWithProjection": "text_encoder", "AutoencoderKL": "vae",
}
_WEIGHTS = ("diffusion_pytorch_model.safetensors", "model.safetensors")


class FolderRead:
    def __init__(self) -> None:
        self.tensors: dict[str, TensorInfo] = {}
        self.metadata: dict[str, str] = {}
        self.configs: dict[str, Any] = {}
        self.size = 0
        self.headers: dict[str, Header] = {}


def _json(path: Path) -> Any:
    try:
        with open_regular(path) as f:  # a FIFO or device is refused, never waited on
            raw = f.read(_MAX_JSON + 1)
        if len(raw) > _MAX_JSON:
            raise BadInput("config file is too large", context=str(path))
        return json.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise BadInput(f"cannot read ({e})", context=str(path)) from None
    except (ValueError, RecursionError) as e:
        raise BadInput(f"invalid JSON ({str(e)[:100]})", context=str(path)) from None


def _there(path: Path) -> bool:
    """An entry that is not a folder, of any type: a FIFO or device named like a weight or config file is read
    (and refused by open_regular), not skipped."""
    return os.path.lexists(path) and not path.is_dir()


def _weights(folder: Path) -> list[Path]:
    for name in _WEIGHTS:
        if _there(folder / name):
            return [folder / name]
        idx = folder / (name + ".index.json")
        if _there(idx):
            data = _json(idx)
            wm = data.get("weight_map") if isinstance(data, dict) else None
            if not isinstance(wm, dict):
                raise BadInput("index has no weight_map", context=str(idx))
            shards = sorted({str(v) for v in wm.values()})
            for s in shards:
                if "/" in s or "\\" in s or s.startswith("."):
                    raise BadInput(f"shard name '{s}' leaves the folder", context=str(idx))
            return [folder / s for s in shards]
    variants = sorted(p for p in folder.glob("*.safetensors"))
    return variants[:1]


def _add(out: FolderRead, comp: str, files: list[Path]) -> None:
    for f in files:
        h = read_header(f)
        out.headers[f"{comp}/{f.name}" if comp else f.name] = h
        out.size += h.file_size
        for name, t in h.tensors.items():
            out.tensors[f"{comp}.{name}" if comp else name] = t
        for k, v in h.metadata.items():
            out.metadata.setdefault(k, v)


def read_folder(folder: Path) -> FolderRead:
    """Headers and configs of a diffusers pipeline folder (model_index.json) or one component folder."""
    out = FolderRead()
    mi = folder / "model_index.json"
    if _there(mi):
        out.configs["model_index"] = _json(mi)
        for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
            comp = sub.name
            cfg = sub / "config.json"
            if _there(cfg):
                out.configs[comp] = _json(cfg)
            sched = sub / "scheduler_config.json"
            if _there(sched):
                out.configs[comp] = _json(sched)
            files = _weights(sub)
            if files:
                _add(out, comp, files)
        if not out.tensors:
            raise BadInput("diffusers folder has no .safetensors weights (pickled .bin only? see hubctl convert)", context=str(folder))
        return out
    cfg = folder / "config.json"
    if _there(cfg):
        conf = _json(cfg)
        cls = conf.get("_class_name") or (conf.get("architectures") or [""])[0] if isinstance(conf, dict) else ""
        comp = COMPONENT_CLASSES.get(str(cls), "")
        files = _weights(folder)
        if comp and files:
            out.configs[comp] = conf
            _add(out, comp, files)
            return out
    files = sorted(folder.glob("*.safetensors"))
    if len(files) == 1:
        _add(out, "", files)
        out.configs["__single__"] = str(files[0])
        return out
    raise BadInput("folder is not a diffusers model (no model_index.json, no config.json with weights, "
                   f"{len(files)} .safetensors files)", context=str(folder))


def read_scalars(path: Path, header: Header, limit: int = 512) -> dict[str, float]:
    """Values of the small scalar tensors a LoRA keeps its alphas in (a few bytes each)."""
    fmt = {"F32": "<f", "F16": "<e", "F64": "<d", "BF16": None, "I64": "<q", "I32": "<i"}
    out: dict[str, float] = {}
    names = [n for n, t in header.tensors.items() if n.endswith(".alpha") and t.numel == 1]
    for name in names[:limit]:
        t = header.tensors[name]
        raw = read_tensor_bytes(path, header, name, limit=8)
        if raw is None:
            continue
        f = fmt.get(t.dtype)
        try:
            if t.dtype == "BF16":
                out[name] = struct.unpack("<f", b"\x00\x00" + raw)[0]
            elif f:
                out[name] = float(struct.unpack(f, raw)[0])
        except struct.error:
            continue
    return out


def read_file_set(files: "dict[str, Path]") -> FolderRead:
    """Like :func:`read_folder` for files named by their path inside a package (component/file)."""
    out = FolderRead()
    for rel, path in sorted(files.items()):
        comp, _, name = rel.rpartition("/")
        comp = comp.split("/")[0] if comp else ""
        if rel.endswith(".safetensors"):
            _add(out, comp, [Path(path)])
        elif name in ("config.json", "scheduler_config.json") and comp:
            out.configs[comp] = _json(Path(path))
        elif name == "model_index.json" and not comp:
            out.configs["model_index"] = _json(Path(path))
    if not out.tensors:
        raise BadInput("no .safetensors files among the package's files", context=", ".join(sorted(files))[:200])
    return out
