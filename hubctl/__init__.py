"""hubctl: a package manager for diffusion models.

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
        from hubctl.scripting import paths

        return paths
    if name == "load_pipeline":
        from hubctl.run import load_pipeline

        return load_pipeline
    raise AttributeError(f"module 'hubctl' has no attribute {name!r}")
