"""Where hubctl keeps its state: HUBCTL_HOME and the paths under it. No I/O beyond making folders.

    $HUBCTL_HOME/                 default: the platform's user data folder (platformdirs)
        registries.toml           configured registries beyond the bundled default
        index.db                  SQLite index compiled from the registries (a cache; rebuilt atomically)
        state.db                  SQLite state: stat cache, roots (install set, synced locks), run records (WAL)
        store/sha256/ab/<hex>     content-addressed blobs, read-only
        store/partial/            downloads in progress (resumable)
        store/locks/              per-blob file locks
        store/quarantine/         blobs that failed verification, until the next gc
        views/run/, views/config/ folders of links diffusers loads through (checked on every run)
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["hubctl_home", "index_db_path", "state_db_path", "store_root", "bundled_registry_path", "bundled_schemas_path"]


def hubctl_home() -> Path:
    """The root of hubctl's state: ``$HUBCTL_HOME`` or the platform's user data folder."""
    env = os.environ.get("HUBCTL_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("hubctl", appauthor=False))


def index_db_path() -> Path:
    return hubctl_home() / "index.db"


def state_db_path() -> Path:
    return hubctl_home() / "state.db"


def store_root() -> Path:
    return hubctl_home() / "store"


def _data_path(name: str) -> Path:
    """A top-level data folder of the project: from the checkout, or from inside the installed wheel."""
    here = Path(__file__).resolve().parent
    checkout = here.parent / name
    if checkout.is_dir():
        return checkout
    return here / "_data" / name


def bundled_registry_path() -> Path:
    """The default registry shipped with hubctl (registry/ in the checkout, hubctl/_data/registry in a wheel)."""
    return _data_path("registry")


def bundled_schemas_path() -> Path:
    return _data_path("schemas")
