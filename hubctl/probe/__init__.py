"""Header-only probing (used by every stage that meets a file): what an artefact is, read from its
safetensors header(s) alone.

    header.py    the strict safetensors header reader        local.py    files and diffusers folders
    remote.py    ranged https:// and hf:// header reads     pickled.py  pickles recognised, never unpickled unasked
    keys.py      tensor names of every layout -> modules    lora.py     LoRA/LyCORIS layouts, rank and alpha
    family.py    shapes -> family, against the family table  classify.py kind, family, layout, variant, evidence
    types.py     the values: Probe, Evidence, Signature     convert.py  a safetensors copy of a pickle, on request

Public API (used by ``hubctl inspect`` / ``check``, the installer and the inference run):

    probe(path_or_url, *, families=None, allow_pickle=False, hash=False) -> Probe
    read_header(path) -> Header

``path_or_url``: a ``.safetensors`` file, a diffusers folder, ``https://...`` or ``hf://org/repo[@rev]/path``.
Pickled files (.ckpt .pt .bin .pth) are recognised and never unpickled unless ``allow_pickle``; then only
through ``torch.load(weights_only=True)``. Never imports torch otherwise, never reads tensor data (except
the few bytes of LoRA alpha scalars in a local file).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hubctl.errors import BadInput
from hubctl.probe.header import Header, TensorInfo, read_header
from hubctl.probe.types import Evidence, LoraModule, Probe, Signature

if TYPE_CHECKING:
    from hubctl.registry.families import FamilyTable

__all__ = ["probe", "probe_files", "read_header", "Header", "TensorInfo", "Probe", "Evidence", "LoraModule", "Signature",
           "default_family_table"]


def default_family_table(*, refresh: bool = True) -> "FamilyTable":
    """The bundled families merged with those of the configured registries (the index), when it opens.
    With no index yet and no registry but the bundled one, the bundled families are the answer (no index build)."""
    from hubctl.registry.families import default_families

    table = default_families()
    try:
        from hubctl.config import index_db_path
        from hubctl.registry.manage import open_index

        if not index_db_path().exists():
            from hubctl.registry.configured import list_registries

            if not [e for e in list_registries() if getattr(e, "name", "") != "default"]:
                return table  # only the bundled registry: its families are the bundled ones
        idx = open_index(refresh=refresh)
        try:
            table = table.merged(idx.families)
        finally:
            idx.close()
    except Exception:  # no index yet, or a broken one: the bundled families still classify
        pass
    return table


def _pickle_probe(path: Path, kind: str, size: int) -> Probe:
    return Probe(
        path=str(path), format="pickle", kind="unknown", family=None, prediction="unknown", variant=None,
        layout=None, size=size,
        notes=(f"pickled file ({kind}): not read, because unpickling can run code; re-run with --allow-pickle "
               f"to read it with torch.load(weights_only=True), or `hubctl convert {path}` to make a safetensors copy",),
    )


def probe(path_or_url: "str | os.PathLike[str]", *, families: "FamilyTable | None" = None,
          allow_pickle: bool = False, hash: bool = False) -> Probe:
    """Probe one artefact (file, folder, https:// or hf:// URL) from its header(s)."""
    from hubctl.probe.classify import classify

    fams = families if families is not None else default_family_table()
    s = str(path_or_url)
    if s.startswith(("https://", "http://", "hf://")):
        from hubctl.probe.remote import hf_resolve, read_remote_header

        if s.startswith("hf://"):
            url, headers, origin = hf_resolve(s)
        else:
            from urllib.parse import urlsplit

            from hubctl.sources.http import auth_header_for

            parts = urlsplit(s)
            auth, _var = auth_header_for(parts.hostname or "", parts.port)  # per-host token from the environment
            url, headers, origin = s, ({"Authorization": auth} if auth else {}), s
        rr = read_remote_header(url, headers, origin=origin)
        if hash:
            raise BadInput("--hash needs the file on disk (a remote hash would download it)", context=origin)
        return classify(rr.header.tensors, rr.header.metadata, families=fams, path=origin, size=rr.size)
    if s.startswith("file://"):
        from urllib.parse import unquote, urlsplit

        s = unquote(urlsplit(s).path)
    p = Path(s).expanduser()
    if p.is_dir():
        from hubctl.probe.local import read_folder, read_scalars

        fr = read_folder(p)
        if "__single__" in fr.configs:
            return probe(fr.configs["__single__"], families=fams, allow_pickle=allow_pickle, hash=hash)
        out = classify(fr.tensors, fr.metadata, families=fams, path=str(p), fmt="diffusers-folder",
                       size=fr.size, configs=fr.configs)
        if hash:
            from hubctl.store.hashes import file_hashes

            files = {name: file_hashes(p / name, h.data_start)["sha256"] for name, h in fr.headers.items()}
            out = replace(out, hashes={f"sha256:{name}": sha for name, sha in files.items()})
        return out
    if not p.exists():
        raise BadInput("no such file or folder", context=str(p))
    from hubctl.probe.pickled import pickle_kind

    pk = pickle_kind(p) if not p.suffix == ".safetensors" else None
    if pk:
        size = p.stat().st_size
        if not allow_pickle:
            return _pickle_probe(p, pk, size)
        from hubctl.probe.pickled import load_pickled

        table, meta = load_pickled(p)
        return classify(table, meta, families=fams, path=str(p), fmt="pickle", size=size)
    header = read_header(p)
    scalars = None
    if any(n.endswith(".alpha") for n in header.tensors):
        from hubctl.probe.local import read_scalars

        scalars = read_scalars(p, header)
    hashes = None
    if hash:
        from hubctl.store.hashes import file_hashes

        hashes = file_hashes(p, header.data_start)
    out = classify(header.tensors, header.metadata, families=fams, path=str(p), size=header.file_size,
                   scalars=scalars, hashes=hashes)
    if hashes:
        out = replace(out, notes=out.notes + tuple(_hash_claims(header.metadata, hashes)))
    return out


def _hash_claims(md: "dict[str, str] | Any", hashes: "dict[str, str]") -> list[str]:
    """Compare the data-only hashes metadata claims (ModelSpec ``hash_sha256``, kohya ``sshs_model_hash``)
    with the computed one: a mismatch means the tensors were changed after the metadata was written."""
    notes = []
    data = hashes.get("data_sha256")
    for key in ("modelspec.hash_sha256", "sshs_model_hash"):
        claim = str(md.get(key, "")).lower().removeprefix("0x")
        if claim and data:
            if claim == data:
                notes.append(f"{key} matches the data hash")
            else:
                notes.append(f"{key} says {claim[:16]}... but the tensor data hashes to {data[:16]}...: the metadata does not describe these weights")
    return notes


def probe_files(files: "dict[str, Path]", *, families: "FamilyTable | None" = None, label: str = "") -> Probe:
    """Probe a package's files given as {path inside the package: file on disk} (e.g. store blobs, which
    carry no names): one file is probed alone; several are read like a diffusers folder."""
    from hubctl.probe.classify import classify
    from hubctl.probe.local import read_file_set

    fams = families if families is not None else default_family_table()
    weights = [k for k in files if k.endswith(".safetensors")]
    if len(weights) == 1 and "/" not in weights[0]:
        p = probe(files[weights[0]], families=fams)
        return replace(p, path=label or weights[0])
    fr = read_file_set(files)
    return classify(fr.tensors, fr.metadata, families=fams, path=label or "package", fmt="diffusers-folder",
                    size=fr.size, configs=fr.configs)
