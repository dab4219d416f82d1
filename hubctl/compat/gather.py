"""The I/O edge of compatibility checks: turn artefacts (paths, URLs, folders, store blobs) and ``hubctl
check`` arguments (which may also be package names with an optional specifier) into probes and declared
values, then call :func:`hubctl.compat.check.check_set`.

A package is looked up in the index; its files come from the store when it is installed
(``hubctl.store.installed.installed_paths``), from where they lie when its sources are ``file://``, and
otherwise: a base is checked against its family's shape table, an adapter's header is read from its
source (header only; skipped with ``offline``). Does I/O; decides nothing itself."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from hubctl.compat.check import Declared, Verdict, check_set, default_label
from hubctl.probe.types import Probe

if TYPE_CHECKING:
    from hubctl.registry.families import FamilyTable

__all__ = ["check_paths", "resolve_argument", "gather_and_check"]

Artefact = "str | Path | Probe | Mapping[str, Path]"


def check_paths(base: Artefact, adapters: Sequence[Artefact], *, families: "FamilyTable | None" = None,
                labels: Sequence[str] | None = None, declared: Sequence[Declared | None] | None = None) -> Verdict:
    """Probe and check a set (what the inference run calls on locked files). Each artefact: a path, folder or
    URL; a ready Probe; or a package's files as {path inside the package: file on disk} (store blobs)."""
    from hubctl.probe import default_family_table, probe, probe_files

    fams = families if families is not None else default_family_table()

    def one(a: Any) -> Probe:
        if isinstance(a, Probe):
            return a
        if isinstance(a, Mapping):
            return probe_files(dict(a), families=fams)
        return probe(a, families=fams)

    return check_set(one(base), [one(a) for a in adapters], families=fams, labels=labels, declared=declared)


def _synthetic(label: str, d: Declared) -> Probe:
    return Probe(path=label, format="manifest", kind=d.kind, family=d.family, prediction=d.prediction or "unknown",
                 variant=None, layout=None, tokens=d.tokens)


def _is_location(arg: str) -> bool:
    return arg.startswith(("https://", "http://", "hf://", "file://")) or Path(arg).expanduser().exists() or "/" in arg or arg.endswith(
        (".safetensors", ".ckpt", ".pt", ".bin", ".pth"))


def _url_label(arg: str) -> str:
    tail = arg.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return tail or arg


def resolve_argument(arg: str, families: "FamilyTable", *, role: str, warnings: list[str],
                     offline: bool = False) -> tuple[Probe, str, Declared | None]:
    """(probe, label, declared) for a CLI argument: a path, a URL, or a package name with optional specifier."""
    from hubctl.errors import BadInput, HubctlError, SourceError
    from hubctl.probe import probe, probe_files

    if _is_location(arg):
        if not arg.startswith(("https://", "http://", "hf://", "file://")) and not Path(arg).expanduser().exists():
            raise BadInput("no such file or folder", context=arg)
        p = probe(arg, families=families)
        return p, _url_label(arg) if "://" in arg else default_label(arg), None
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.version import Version

    try:
        req = Requirement(arg)
    except InvalidRequirement:
        raise BadInput(f"'{arg}' is not a file, a URL or a package name") from None
    from hubctl.registry.manage import open_index

    idx = open_index()
    try:
        man = idx.get(req.name)
    finally:
        idx.close()
    if man is None:
        from hubctl.registry.index import close_names

        idx = open_index()
        try:
            close = close_names(req.name, idx.names())
        finally:
            idx.close()
        hint = f"did you mean: {', '.join(close)}?" if close else "see `hubctl search`"
        raise BadInput(f"'{req.name}' is not a file, a URL or a package in the index ({hint})")
    installed = None
    try:
        from hubctl.store.installed import installed_package, installed_paths

        inst = installed_package(man.name)
        if inst is not None:
            installed = (inst.version, installed_paths(man.name))
    except HubctlError:
        raise
    except Exception:  # no state database yet
        installed = None
    from hubctl.resolve import parse_requirement
    from hubctl.resolve.policy import admit

    # the resolver's policy (pre-releases, yanked versions), the installed version first when it is admitted
    versions = sorted(man.versions, key=lambda v: v.parsed, reverse=True)
    pool = admit(versions, [parse_requirement(arg)], pre=False, version=lambda v: v.parsed, yanked=lambda v: v.yanked).admitted
    if not pool:
        raise BadInput(f"no version of {man.name} matches '{arg}' (versions: {', '.join(v.version for v in versions)})")
    chosen = next((v for v in pool if installed and v.parsed == Version(installed[0])), pool[0])
    if installed and chosen.parsed != Version(installed[0]):
        installed = None
    d = Declared(man.name, chosen.version, man.kind, chosen.family, tuple(chosen.requires), tuple(chosen.tokens), chosen.prediction)
    label = d.label
    if installed and installed[1]:
        p = probe_files(installed[1], families=families, label=label)
        return p, label, d
    # not installed: files with a local source are read where they lie; otherwise a base is checked
    # against its family's shape table and an adapter's header is read from its source (header only)
    variant = next((v for v in chosen.variants if any(f.path.endswith(".safetensors") for f in v.files)), chosen.variants[0])
    if all(f.source.startswith("file://") for f in variant.files):
        from urllib.parse import unquote, urlsplit

        local = {f.path: Path(unquote(urlsplit(f.source).path)) for f in variant.files}
        if all(x.is_file() for x in local.values()):
            return probe_files(local, families=families, label=label), label, d
    if role == "base":
        return _synthetic(label, d), label, d
    files = [f for f in variant.files if f.path.endswith(".safetensors")]
    if len(files) != 1:
        warnings.append(f"{label}: structural check uses the declared family only (not installed; {len(files)} safetensors files)")
        return _synthetic(label, d), label, d
    src = files[0].source
    if offline and not src.startswith("file://"):
        warnings.append(f"{label}: not installed and --offline: structural check uses the declared family only")
        return _synthetic(label, d), label, d
    try:
        p = probe(src, families=families)
    except (SourceError, BadInput) as e:
        warnings.append(f"{label}: header not readable from its source, structural check skipped ({e})")
        return _synthetic(label, d), label, d
    return replace(p, path=label), label, d


def gather_and_check(base: str, adapters: Sequence[str], *, offline: bool = False) -> Verdict:
    """Check ``base`` + ``adapters`` given as CLI arguments; warnings of the resolution come first."""
    from hubctl.probe import default_family_table

    fams = default_family_table()
    warnings: list[str] = []
    probes, labels, decl = [], [], []
    for role, arg in [("base", base), *(("adapter", a) for a in adapters)]:
        p, label, d = resolve_argument(arg, fams, role=role, warnings=warnings, offline=offline)
        probes.append(p)
        labels.append(label)
        decl.append(d)
    v = check_set(probes[0], probes[1:], families=fams, labels=labels, declared=decl)
    return Verdict(v.compatible, v.problems, warnings + v.warnings, v.checked)
