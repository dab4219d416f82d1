"""The offline demo hub: tiny real models, manifests and a registry folder, built under one folder.

Owns the layout of a demo hub and its manifests::

    OUT/
      .hubctl-demo                   marker: this folder was made by hubctl demo (safe to rebuild)
      files/<package>/<version>/<variant>/<path>   the artefacts (read-only once built)
      registry/families.toml         demo-sd1 and demo-sd2, declared like registry/families.toml
      registry/manifests/<kind>/<name>.toml   sizes, sha256 and absolute file:// sources for every file

Packages: ``demo-sd`` (checkpoint: 1.4 on demo-sd1 as a diffusers folder and as an LDM single file; 2.0 and
the pre-release 2.1b1 on demo-sd2, v-prediction), ``demo-style`` (LoRA: 1.0 kohya format for demo-sd1,
2.0 diffusers/peft format for demo-sd2), ``demo-token`` (textual-inversion embedding, demo-sd1,
``<demo-token>``) and ``demo-canny`` (ControlNet, demo-sd1).

The artefacts are the same bytes on every build (fixed seeds; see :mod:`hubctl.demo.models`), so their
sha256 are stable; only the manifests' ``source`` URLs depend on where OUT is. A rebuild writes into a
scratch folder inside OUT and swaps it in, so a failed build leaves the previous hub as it was.

Must not import torch / diffusers at module level (the CLI imports this module lazily, and the model
building lives in :mod:`hubctl.demo.models`); never downloads.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hubctl.errors import BadInput
from hubctl.store.hashes import sha256_file

if TYPE_CHECKING:
    from hubctl.registry.configured import RegistryEntry

__all__ = [
    "DemoHub",
    "DEMO_REGISTRY_NAME",
    "MARKER",
    "PACKAGES",
    "build_demo_hub",
    "open_demo_hub",
    "register_demo_hub",
]

MARKER = ".hubctl-demo"
DEMO_REGISTRY_NAME = "demo"
_HUB_FORMAT = "1"

# Every artefact of the hub: (package, kind, version, family, variant, layout, what to build).
# Seeds are part of the hub's identity: changing one changes the sha256 in every manifest.
_ARTEFACTS: list[dict[str, Any]] = [
    {"package": "demo-sd", "version": "1.4", "family": "demo-sd1", "variant": "fp32", "layout": "diffusers", "build": "pipeline", "seed": 14},
    {"package": "demo-sd", "version": "1.4", "family": "demo-sd1", "variant": "single-file", "layout": "single-file", "build": "single-file", "seed": 14, "path": "demo-sd-1.4.safetensors"},
    {"package": "demo-sd", "version": "2.0", "family": "demo-sd2", "variant": "fp32", "layout": "diffusers", "build": "pipeline", "seed": 20, "prediction": "v_prediction"},
    {"package": "demo-sd", "version": "2.1b1", "family": "demo-sd2", "variant": "fp32", "layout": "diffusers", "build": "pipeline", "seed": 21, "prediction": "v_prediction"},
    {"package": "demo-style", "version": "1.0", "family": "demo-sd1", "variant": "fp32", "build": "kohya-lora", "base_seed": 14, "seed": 101, "path": "demo-style-1.0.safetensors"},
    {"package": "demo-style", "version": "2.0", "family": "demo-sd2", "variant": "fp32", "build": "peft-lora", "base_seed": 20, "seed": 102, "path": "pytorch_lora_weights.safetensors"},
    {"package": "demo-token", "version": "1.0", "family": "demo-sd1", "variant": "fp32", "build": "embedding", "seed": 201, "path": "learned_embeds.safetensors"},
    {"package": "demo-canny", "version": "1.0", "family": "demo-sd1", "variant": "fp32", "layout": "diffusers", "build": "controlnet", "base_seed": 14, "seed": 301},
]

# Package-level and version-level manifest fields (everything but the files).
PACKAGES: dict[str, dict[str, Any]] = {
    "demo-sd": {
        "kind": "checkpoint",
        "summary": "Tiny offline Stable Diffusion look-alike: 1.x (epsilon) and 2.x (v-prediction) lines",
        "license": "apache-2.0",
        "tags": ["demo", "base-model"],
        "versions": {
            "1.4": {"family": "demo-sd1", "prediction": "epsilon", "resolution": 64, "released": "2022-08-22"},
            "2.0": {"family": "demo-sd2", "prediction": "v_prediction", "resolution": 64, "released": "2022-11-24"},
            "2.1b1": {"family": "demo-sd2", "prediction": "v_prediction", "resolution": 64, "notes": "pre-release: chosen only with --pre"},
        },
    },
    "demo-style": {
        "kind": "lora",
        "summary": "Tiny demo style LoRA (1.0: kohya format for demo-sd 1.x; 2.0: diffusers/peft format for demo-sd 2.x)",
        "license": "apache-2.0",
        "tags": ["demo", "style"],
        "versions": {
            "1.0": {"family": "demo-sd1", "requires": ["demo-sd>=1.4,<2"], "trigger": ["demo style"]},
            "2.0": {"family": "demo-sd2", "requires": ["demo-sd>=2"], "trigger": ["demo style"]},
        },
    },
    "demo-token": {
        "kind": "embedding",
        "summary": "Tiny textual-inversion embedding for demo-sd 1.x (token <demo-token>)",
        "license": "apache-2.0",
        "tags": ["demo", "textual-inversion"],
        "versions": {"1.0": {"family": "demo-sd1", "tokens": ["<demo-token>"], "trigger": ["<demo-token>"]}},
    },
    "demo-canny": {
        "kind": "controlnet",
        "summary": "Tiny ControlNet (canny-style edges) for demo-sd 1.x",
        "license": "apache-2.0",
        "tags": ["demo", "controlnet", "canny"],
        "versions": {"1.0": {"family": "demo-sd1", "task": "canny"}},
    },
}


@dataclass
class DemoHub:
    """A built demo hub.

    ``files`` maps ``(package, version, variant)`` to the absolute paths of that variant's files, sorted;
    ``folder(...)`` is the folder that holds them (a diffusers pipeline folder for ``demo-sd`` ``fp32``);
    ``manifests`` maps package name to its manifest file; ``sha256`` maps every file to its hash."""

    root: Path
    registry: Path
    files_dir: Path
    files: dict[tuple[str, str, str], list[Path]]
    manifests: dict[str, Path]
    sha256: dict[Path, str] = field(default_factory=dict)
    seconds: float = 0.0

    def folder(self, package: str, version: str, variant: str = "fp32") -> Path:
        return self.files_dir / package / version / variant

    def file(self, package: str, version: str, variant: str = "fp32", path: str | None = None) -> Path:
        """One file of a variant: the only one, or the one at ``path`` inside the variant."""
        paths = self.files[(package, version, variant)]
        if path is None:
            if len(paths) != 1:
                raise KeyError(f"{package} {version} {variant} has {len(paths)} files; name one")
            return paths[0]
        want = self.folder(package, version, variant) / path
        if want not in paths:
            raise KeyError(f"{package} {version} {variant} has no file {path}")
        return want

    def to_json(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "registry": str(self.registry),
            "files_dir": str(self.files_dir),
            "packages": {
                f"{p} {v} {var}": [
                    {"path": str(f.relative_to(self.folder(p, v, var))), "size": f.stat().st_size, "sha256": self.sha256.get(f)}
                    for f in fs
                ]
                for (p, v, var), fs in sorted(self.files.items())
            },
            "manifests": {k: str(v) for k, v in sorted(self.manifests.items())},
            "seconds": round(self.seconds, 2),
        }


def _check_out_dir(out: Path) -> None:
    """Refuse to rebuild inside a folder hubctl demo did not make (it replaces files/ and registry/)."""
    if out.exists() and not out.is_dir():
        raise BadInput(f"'{out}' exists and is not a folder")
    if out.is_dir() and not (out / MARKER).is_file():
        ours = [n for n in ("files", "registry") if (out / n).exists()]
        if ours:
            raise BadInput(
                f"'{out}' already has {' and '.join(ours)}/ not made by hubctl demo; choose another --out"
            )


class _QuietLibraries:
    """Silence transformers/diffusers/huggingface_hub warnings and progress bars while the hub builds
    (``Writing model shards``, optional-dependency notices); the previous settings come back after."""

    def __enter__(self) -> "_QuietLibraries":
        import transformers.utils.logging as tl

        self._tl = tl
        self._tl_level = tl.get_verbosity()
        tl.set_verbosity_error()
        tl.disable_progress_bar()
        import diffusers.utils.logging as dl  # imported after transformers is quiet: its import warns

        self._dl = dl
        self._dl_level = dl.get_verbosity()
        dl.set_verbosity_error()
        dl.disable_progress_bar()
        from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars

        self._hf_disabled = are_progress_bars_disabled()
        disable_progress_bars()
        return self

    def __exit__(self, *exc: object) -> None:
        from huggingface_hub.utils import enable_progress_bars

        self._tl.set_verbosity(self._tl_level)
        self._tl.enable_progress_bar()
        self._dl.set_verbosity(self._dl_level)
        self._dl.enable_progress_bar()
        if not self._hf_disabled:
            enable_progress_bars()


def _build_artefacts(stage: Path, work: Path) -> None:
    """Write every artefact of the hub under ``stage/files`` (imports torch and diffusers)."""
    with _QuietLibraries():
        _build_artefacts_quietly(stage, work)


def _build_artefacts_quietly(stage: Path, work: Path) -> None:
    from hubctl.demo import families as dm_families, models as dm, writers as dm_writers
    pipes: dict[int, Any] = {}

    def base(a: dict[str, Any]) -> Any:  # the pipeline an adapter is made for (built earlier in the table)
        return pipes[a.get("base_seed", a["seed"])]

    for a in _ARTEFACTS:
        dest = stage / "files" / a["package"] / a["version"] / a["variant"]
        kind = a["build"]
        if kind == "pipeline":
            if a["seed"] not in pipes:
                pipes[a["seed"]] = dm.build_pipeline(a["family"], a["seed"], work, prediction=a.get("prediction"))
            dm_writers.save_pipeline(pipes[a["seed"]], dest)
        elif kind == "single-file":
            meta = {
                "modelspec.sai_model_spec": "1.0.1",
                "modelspec.architecture": "demo-sd1",
                "modelspec.implementation": "diffusers",
                "modelspec.title": f"{a['package']} {a['version']}",
                "modelspec.prediction_type": "epsilon",
                "modelspec.resolution": "64x64",
            }
            dm_writers.write_single_file(base(a), dest / a["path"], metadata=meta)
        elif kind == "kohya-lora":
            dm_writers.write_kohya_lora(base(a), dest / a["path"], a["seed"])
        elif kind == "peft-lora":
            dm_writers.write_peft_lora(base(a), dest / a["path"], a["seed"])
        elif kind == "embedding":
            width = dm_families.FAMILIES[a["family"]]["text_encoder_widths"][0]
            dm_writers.write_embedding(dest / a["path"], width, a["seed"])
        elif kind == "controlnet":
            cn = dm.build_controlnet(base(a), a["seed"])
            cn.save_pretrained(str(dest), safe_serialization=True)
            dm_writers.normalise_json_files(dest)
        else:  # pragma: no cover - table typo
            raise AssertionError(kind)


def _write_registry(stage: Path, final_files: Path) -> dict[tuple[str, str, str], list[tuple[str, int, str]]]:
    """Write families.toml and one manifest per package under ``stage/registry``; sources point at
    ``final_files`` (where the files will live once the stage is swapped in)."""
    import tomli_w

    from hubctl.demo import families as dm_families
    from hubctl.fsutil import atomic_write_text
    from hubctl.registry.manifest import Manifest, dump_manifest, load_manifest

    reg = stage / "registry"
    families_text = (
        "# Demo families: tiny look-alikes of sd1 and sd2, declared like registry/families.toml.\n"
        "# Written by `hubctl demo`; the reference configs build the demo hub's models.\n"
        + tomli_w.dumps({"families": [dm_families.family_entry(f) for f in sorted(dm_families.FAMILIES)]})
    )
    atomic_write_text(reg / "families.toml", families_text)

    listing: dict[tuple[str, str, str], list[tuple[str, int, str]]] = {}
    for a in _ARTEFACTS:
        folder = stage / "files" / a["package"] / a["version"] / a["variant"]
        entries = []
        for p in sorted(q for q in folder.rglob("*") if q.is_file()):
            rel = p.relative_to(folder).as_posix()
            entries.append((rel, p.stat().st_size, sha256_file(p)[0]))
        listing[(a["package"], a["version"], a["variant"])] = entries

    for name, pkg in PACKAGES.items():
        versions = []
        for ver, vfields in pkg["versions"].items():
            variants = []
            for a in _ARTEFACTS:
                if a["package"] != name or a["version"] != ver:
                    continue
                src_root = final_files / name / ver / a["variant"]
                variant: dict[str, Any] = {
                    "name": a["variant"],
                    "dtype": "fp32",
                    "files": [
                        {"path": rel, "size": size, "sha256": digest, "source": (src_root / rel).as_uri()}
                        for rel, size, digest in listing[(name, ver, a["variant"])]
                    ],
                }
                if a.get("layout"):
                    variant["layout"] = a["layout"]
                variants.append(variant)
            versions.append({"version": ver, **vfields, "variants": variants})
        manifest = Manifest.model_validate(
            {k: v for k, v in pkg.items() if k != "versions"} | {"name": name, "homepage": None, "versions": versions}
        )
        path = reg / "manifests" / pkg["kind"] / f"{name}.toml"
        atomic_write_text(path, f"# {name}: demo hub manifest written by `hubctl demo`.\n" + dump_manifest(manifest))
        load_manifest(path, known_families=set(dm_families.FAMILIES))  # round-trip: what we wrote must validate
    return listing


def _make_read_only(folder: Path) -> None:
    for p in folder.rglob("*"):
        if p.is_file():
            mode = p.stat().st_mode
            p.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _rmtree(path: Path) -> None:
    def retry(func: Any, p: str, _exc: Any) -> None:  # read-only files inside: make writable, retry
        try:
            os.chmod(os.path.dirname(p), stat.S_IRWXU)
            os.chmod(p, stat.S_IRWXU)
        except OSError:
            pass
        func(p)

    if path.exists():
        if sys.version_info >= (3, 12):
            shutil.rmtree(path, onexc=retry)
        else:  # pragma: no cover - version dependent
            shutil.rmtree(path, onerror=retry)


def build_demo_hub(out: Path) -> DemoHub:
    """Build the demo hub under ``out`` (created if needed) and return its paths.

    Builds into ``out/.build-<pid>`` first and then swaps ``files/`` and ``registry/`` into place; a folder
    that already holds ``files/`` or ``registry/`` not made by hubctl demo is refused (BadInput). A build that
    fails or is interrupted removes ``out`` when it created it. Does not register the hub: see
    :func:`register_demo_hub`."""
    start = time.perf_counter()
    out = Path(out).expanduser().resolve()
    _check_out_dir(out)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / MARKER).write_text(f"hubctl demo hub, format {_HUB_FORMAT}\n", "utf-8")
        stage = out / f".build-{os.getpid()}"
        _rmtree(stage)
        stage.mkdir()
        try:
            _build_artefacts(stage, stage / "work")
            _rmtree(stage / "work")
            listing = _write_registry(stage, out / "files")
            _make_read_only(stage / "files")
            for name in ("files", "registry"):
                old = out / f".old-{name}-{os.getpid()}"
                if (out / name).exists():
                    os.replace(out / name, old)
                os.replace(stage / name, out / name)
                _rmtree(old)
        finally:
            _rmtree(stage)
    except BaseException:  # failed or interrupted (Ctrl-C): a folder this build created goes; nothing half-built stays
        if created:
            _rmtree(out)
        raise

    files: dict[tuple[str, str, str], list[Path]] = {}
    sha: dict[Path, str] = {}
    for key, entries in listing.items():
        folder = out / "files" / key[0] / key[1] / key[2]
        files[key] = [folder / rel for rel, _, _ in entries]
        for rel, _, digest in entries:
            sha[folder / rel] = digest
    manifests = {name: out / "registry" / "manifests" / pkg["kind"] / f"{name}.toml" for name, pkg in PACKAGES.items()}
    return DemoHub(
        root=out,
        registry=out / "registry",
        files_dir=out / "files",
        files=files,
        manifests=manifests,
        sha256=sha,
        seconds=time.perf_counter() - start,
    )


def open_demo_hub(out: Path) -> DemoHub:
    """The DemoHub of a hub already built under ``out`` (read from its manifests; nothing is rebuilt).

    Raises BadInput when ``out`` holds no complete demo hub."""
    from hubctl.demo import families as dm_families
    from hubctl.registry.manifest import load_manifest

    out = Path(out).expanduser().resolve()
    if not (out / MARKER).is_file() or not (out / "registry" / "families.toml").is_file():
        raise BadInput(f"'{out}' holds no demo hub (run `hubctl demo --out {out}`)")
    files: dict[tuple[str, str, str], list[Path]] = {}
    sha: dict[Path, str] = {}
    manifests: dict[str, Path] = {}
    for name, pkg in PACKAGES.items():
        path = out / "registry" / "manifests" / pkg["kind"] / f"{name}.toml"
        manifest = load_manifest(path, known_families=set(dm_families.FAMILIES))
        manifests[name] = path
        for ver in manifest.versions:
            for var in ver.variants:
                folder = out / "files" / name / ver.version / var.name
                paths = [folder / f.path for f in var.files]
                files[(name, ver.version, var.name)] = paths
                for f, p in zip(var.files, paths):
                    if f.sha256:
                        sha[p] = f.sha256
    return DemoHub(out, out / "registry", out / "files", files, manifests, sha)


def register_demo_hub(hub: DemoHub, name: str = DEMO_REGISTRY_NAME) -> "RegistryEntry":
    """Register the hub's registry folder under ``name`` in the current HUBCTL_HOME (recompiles the index).

    Re-registering points ``name`` at this hub; a hub at another folder under the same name is replaced."""
    from hubctl.registry.configured import list_registries
    from hubctl.registry.manage import add_registry, remove_registry

    location = str(hub.registry)
    for e in list_registries():
        if e.location == location and e.name != name and e.kind != "bundled":
            remove_registry(e.name)  # the same folder under another name: keep one
    return add_registry(location, name=name)
