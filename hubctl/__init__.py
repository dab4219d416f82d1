"""hubctl: a package manager for diffusion models.

One package per stage of the data flow, registry -> resolve -> lock -> fetch -> store -> run::

    registry/  manifests, families, configured registries, the SQLite index (compile, read)
    probe/     header-only readers and classifiers (used wherever a file is met); convert
    compat/    is a set compatible (declared and structural), shape tables
    resolve/   requirements -> one compatible set (resolvelib)
    lock/      the lock file, pinning, diff, the project file and script metadata, the lock workflow
    sources/   hf://, https://, file://, civitai: behind one protocol; fetching locked files into the store
    store/     content-addressed blobs, partial downloads, roots (install set, synced locks), views, hashes
    run/       the verified inference run (the only place that imports torch), run records, batches
    serve/     ``hubctl serve``: the JSON API, work queue, auth and gallery; ``hubctl runs export``
    adopt/     the way in: other tools' model folders into the store (adopt), shared images and workflows into locks (import)
    demo/      the offline demo hub
    cli/       the typer app, one module per command group
    errors.py, config.py, db.py, fsutil.py, progress.py, tomlcompat.py, display.py: small shared pieces

Library entry points for scripts (imported lazily so ``import hubctl`` stays cheap):

- ``hubctl.paths()``: inside a script run by ``hubctl run``, the verified files of the lock, by package.
- ``hubctl.load_pipeline(lock=None, device="auto", dtype="auto")``: a ready diffusers pipeline built from a
  verified lock (imports torch/diffusers on first call).
"""

from __future__ import annotations

from typing import Any

__all__ = ["paths", "load_pipeline", "__version__"]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "paths":
        from hubctl.run.paths import paths

        return paths
    if name == "load_pipeline":
        from hubctl.run import load_pipeline

        return load_pipeline
    raise AttributeError(f"module 'hubctl' has no attribute {name!r}")
