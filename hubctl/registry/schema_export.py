"""JSON Schemas of hubctl's file formats, generated from the pydantic models into ``schemas/``.

``python -m hubctl.registry.schema_export`` rewrites every schema; ``python -m hubctl.registry.schema_export --check`` exits 1
when a checked-in schema differs from its model (tests/registry/test_schemas.py does the same). To publish another
format, add a ``(file name, "module:Model")`` pair to :data:`SCHEMAS`; models are imported lazily by name
so this module stays import-cheap. Writes only under the schemas folder, atomically.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any, Iterable

__all__ = ["SCHEMAS", "schema_for", "render_schema", "export_schemas", "check_schemas", "main"]

# (file name under schemas/, a model class, "module:Model", or "module:function" returning a schema dict)
SCHEMAS: list[tuple[str, Any]] = [
    ("manifest.schema.json", "hubctl.registry.manifest:Manifest"),
    ("families.schema.json", "hubctl.registry.schema_export:families_file_schema"),
    ("lock.schema.json", "hubctl.lock.schema:lock_file_schema"),
    ("project.schema.json", "hubctl.lock.project:project_file_schema"),
]

_BASE_ID = "https://hubctl.invalid/schemas/"


def families_file_schema() -> dict[str, Any]:
    """Schema of a whole ``families.toml``: ``{"families": [Family, ...]}``."""
    from pydantic import BaseModel, ConfigDict, Field

    from hubctl.registry.families import Family

    class FamiliesFile(BaseModel):
        """A families.toml file: the architectures a registry declares."""

        model_config = ConfigDict(extra="forbid", title="FamiliesFile")
        families: list[Family] = Field(default_factory=list, description="One [[families]] table per family.")

    return FamiliesFile.model_json_schema()


def schema_for(target: Any) -> dict[str, Any]:
    """The JSON schema of a pydantic model class, of ``"module:Model"``, or of ``"module:function"``
    (a function returning the schema dict)."""
    if isinstance(target, str):
        mod_name, _, attr = target.partition(":")
        obj = getattr(importlib.import_module(mod_name), attr)
    else:
        obj = target
    if hasattr(obj, "model_json_schema"):
        return obj.model_json_schema()
    return obj()


def render_schema(filename: str, target: Any) -> str:
    """The exact text written for one schema (stable: sorted keys, 2-space indent, trailing newline)."""
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": _BASE_ID + filename, **schema_for(target)}
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _schemas_dir() -> Path:
    from hubctl.config import bundled_schemas_path

    return bundled_schemas_path()


def export_schemas(out_dir: Path | None = None, entries: Iterable[tuple[str, Any]] | None = None) -> list[Path]:
    """Write every schema (atomically) and return the paths written."""
    from hubctl.fsutil import atomic_write_text

    out_dir = Path(out_dir) if out_dir is not None else _schemas_dir()
    written = []
    for filename, target in entries if entries is not None else SCHEMAS:
        path = out_dir / filename
        atomic_write_text(path, render_schema(filename, target))
        written.append(path)
    return written


def check_schemas(out_dir: Path | None = None, entries: Iterable[tuple[str, Any]] | None = None) -> list[str]:
    """File names whose checked-in schema is missing or differs from what its model generates."""
    out_dir = Path(out_dir) if out_dir is not None else _schemas_dir()
    stale = []
    for filename, target in entries if entries is not None else SCHEMAS:
        path = out_dir / filename
        try:
            current = path.read_text("utf-8")
        except OSError:
            current = None
        if current != render_schema(filename, target):
            stale.append(filename)
    return stale


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--check" in args:
        stale = check_schemas()
        for name in stale:
            print(f"schemas/{name} is out of date: run `python -m hubctl.registry.schema_export`", file=sys.stderr)
        return 1 if stale else 0
    for path in export_schemas():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
