"""Per-family shape tables (``registry/shapes/<family>.json``, written by ``python -m hubctl.compat.shapes_gen``):
for a base that is not on disk, the module shape map a structural check compares adapters with. Loads
JSON; never imports torch. A registry may ship its own ``shapes/`` folder beside its families.toml."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Iterable

from hubctl.errors import BadInput
from hubctl.probe.keys import ModuleMap

__all__ = ["load_shape_table", "shape_table", "shape_dirs"]


def shape_dirs(extra: Iterable[Path] = ()) -> list[Path]:
    from hubctl.config import bundled_registry_path

    return [*extra, bundled_registry_path() / "shapes"]


def load_shape_table(path: Path) -> ModuleMap:
    """Read one table file into ``{component: {module: (in, out[, kh, kw])}}``."""
    try:
        data = json.loads(Path(path).read_text("utf-8"))
        comps = data["components"]
        return {c: {m: tuple(int(x) for x in v) for m, v in mods.items()} for c, mods in comps.items()}
    except OSError as e:
        raise BadInput(f"cannot read shape table ({e.strerror or e})", context=str(path)) from None
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise BadInput(f"not a shape table ({e})", context=str(path)) from None


@lru_cache(maxsize=32)
def _cached(path: str, stat_key: tuple[int, int, int, int, int]) -> ModuleMap:
    return load_shape_table(Path(path))


def shape_table(family: str, dirs: Iterable[Path] | None = None) -> ModuleMap | None:
    """The shape table of ``family`` from the first folder that has one, or None. Parsed tables are cached
    by path and (size, mtime, ctime, device, inode): an edit that keeps size and mtime still changes ctime,
    which userland cannot set back."""
    for d in (list(dirs) if dirs is not None else shape_dirs()):
        p = Path(d) / f"{family}.json"
        if p.is_file():
            st = p.stat()
            return _cached(str(p), (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_dev, st.st_ino))
    return None
