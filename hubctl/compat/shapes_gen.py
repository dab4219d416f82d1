"""Generator of the per-family shape tables (registry/shapes/<family>.json): builds each family's
reference configs (registry/families.toml) on torch's meta device, so no weights and no memory, and
writes every Linear / Conv2d module's (in_features, out_features[, kh, kw]) by component.

Run: ``python -m hubctl.compat.shapes_gen [--out registry/shapes] [FAMILY...]``. torch, diffusers and
transformers are imported inside the functions that need them, never at module level."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Mapping

__all__ = ["reference_state_shapes", "module_table", "generate", "main"]

_DIFFUSERS = {"UNet2DConditionModel", "AutoencoderKL", "ControlNetModel"}
_TRANSFORMERS = {"CLIPTextModel", "CLIPTextModelWithProjection"}
_MODULE_COMPONENTS = ("unet", "text_encoder", "text_encoder_2")


def _clean(cfg: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cfg.items() if not k.startswith("_")}


def _canon(comp: str, name: str) -> str:
    """Text encoder names as real checkpoints carry them (``text_model.`` prefix, whatever transformers' version)."""
    if comp.startswith("text_encoder"):
        from hubctl.probe.keys import te_canonical

        return te_canonical(name)
    return name


def _build(cfg: Mapping[str, Any]) -> Any:
    import torch

    cls = cfg.get("_class_name", "")
    with torch.device("meta"):
        if cls in _DIFFUSERS:
            import diffusers

            return getattr(diffusers, cls).from_config(_clean(cfg))
        if cls in _TRANSFORMERS:
            import transformers

            conf = transformers.CLIPTextConfig(**_clean(cfg))
            return getattr(transformers, cls)(conf)
    raise ValueError(f"cannot build a {cls!r} on the meta device")


def reference_state_shapes(family: Any, components: tuple[str, ...] | None = None) -> dict[str, dict[str, list[int]]]:
    """{component: {tensor name: shape}} of a family's reference models, built on the meta device."""
    out: dict[str, dict[str, list[int]]] = {}
    for comp, cfg in family.reference.items():
        if comp == "scheduler" or (components and comp not in components):
            continue
        model = _build(cfg)
        out[comp] = {_canon(comp, k): list(v.shape) for k, v in model.state_dict().items()}
    return out


def module_table(family: Any) -> dict[str, Any]:
    """The shape table of one family: Linear -> [in, out], Conv2d -> [in, out, kh, kw], per component."""
    import torch

    comps: dict[str, dict[str, list[int]]] = {}
    for comp, cfg in family.reference.items():
        if comp not in _MODULE_COMPONENTS:
            continue
        model = _build(cfg)
        table: dict[str, list[int]] = {}
        for name, mod in model.named_modules():
            if isinstance(mod, torch.nn.Linear):
                table[_canon(comp, name)] = [mod.in_features, mod.out_features]
            elif isinstance(mod, torch.nn.Conv2d):
                table[_canon(comp, name)] = [mod.in_channels, mod.out_channels, *mod.kernel_size]
        comps[comp] = dict(sorted(table.items()))
    return {"family": family.id, "generated_by": "python -m hubctl.compat.shapes_gen", "components": comps}


def generate(families_toml: Path, out_dir: Path, only: list[str] | None = None) -> list[Path]:
    from hubctl.registry.families import load_families
    from hubctl.fsutil import atomic_write_text

    table = load_families(families_toml)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fam in table:
        if only and fam.id not in only:
            continue
        data = module_table(fam)
        path = out_dir / f"{fam.id}.json"
        # one module per line: compact, yet diffs stay readable
        lines = ["{", f'  "family": {json.dumps(data["family"])},', f'  "generated_by": {json.dumps(data["generated_by"])},', '  "components": {']
        comps = list(data["components"].items())
        for ci, (comp, mods) in enumerate(comps):
            lines.append(f"    {json.dumps(comp)}: {{")
            items = list(mods.items())
            for i, (k, v) in enumerate(items):
                lines.append(f"      {json.dumps(k)}: {json.dumps(v)}" + ("," if i < len(items) - 1 else ""))
            lines.append("    }" + ("," if ci < len(comps) - 1 else ""))
        lines += ["  }", "}"]
        atomic_write_text(path, "\n".join(lines) + "\n", mode=0o644)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    from hubctl.config import bundled_registry_path

    ap = argparse.ArgumentParser(prog="python -m hubctl.compat.shapes_gen", description=__doc__.splitlines()[0])
    ap.add_argument("families", nargs="*", help="family ids (default: all)")
    ap.add_argument("--families-toml", type=Path, default=bundled_registry_path() / "families.toml")
    ap.add_argument("--out", type=Path, default=bundled_registry_path() / "shapes")
    args = ap.parse_args(argv)
    for p in generate(args.families_toml, args.out, args.families or None):
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
