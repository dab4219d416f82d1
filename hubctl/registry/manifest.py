"""Manifests: the typed description of a package (its versions, variants, files, sources, hashes and
compatibility), loaded from and dumped to TOML. Pure values and validation; the only I/O is reading
or writing one manifest file.

A manifest on disk (``registry/manifests/<kind>/<name>.toml``)::

    name = "arcane-style"
    kind = "lora"
    summary = "Arcane series style"
    [[versions]]
    version = "1.0"
    family = "sd1"
    requires = ["stable-diffusion>=1.4,<2"]
    trigger = ["arcane style"]
    [[versions.variants]]
    name = "fp16"
    dtype = "fp16"
    files = [{ path = "arcane.safetensors", size = 151108831, sha256 = "...", source = "https://..." }]

Every validation error becomes one line with a context path, e.g.
``registry/manifests/lora/x.toml: versions[0].version: 'not a version!' is not a PEP 440 version``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Literal, Optional
from urllib.parse import unquote, urlsplit

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version as PEP440Version
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hubctl.errors import PARSE_ERRORS, BadInput, parse_failure
from hubctl.registry.fields import (
    check_family_id,
    check_file_path,
    check_package_name,
    check_requirement,
    check_text,
    check_variant_name,
    one_line,
)

from hubctl.tomlcompat import tomllib

__all__ = [
    "KINDS",
    "Kind",
    "SourceRef",
    "parse_source",
    "FileRef",
    "Variant",
    "Version",
    "Manifest",
    "load_manifest",
    "parse_manifest",
    "local_source_under",
    "with_local_sources_under",
    "dump_manifest",
    "format_validation_error",
]

KINDS = ("checkpoint", "lora", "embedding", "controlnet", "vae")
Kind = Literal["checkpoint", "lora", "embedding", "controlnet", "vae"]
Prediction = Literal["epsilon", "v_prediction"]
Layout = Literal["diffusers", "single-file"]

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_HF_REPO_TYPES = ("models", "datasets", "spaces")
_CIVITAI_RE = re.compile(r"^civitai:[1-9][0-9]{0,11}(?:/[1-9][0-9]{0,11})?$")


# --------------------------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class SourceRef:
    """A parsed source URL.

    - ``hf://org/repo@revision/path/in/repo`` (``@revision`` optional, default ``main``;
      ``hf://datasets/org/repo@rev/path`` for dataset repos)
    - ``https://...`` / ``http://...`` (any static server, Civitai download URLs)
    - ``file:///abs/path`` or a plain local path
    - ``civitai:VERSION_ID`` or ``civitai:VERSION_ID/FILE_ID`` (a Civitai model version's primary file, or one of
      its files by id: :mod:`hubctl.sources.civitai`)
    """

    scheme: Literal["hf", "https", "http", "file", "civitai"]
    url: str
    repo_id: str | None = None
    repo_type: str = "model"
    revision: str | None = None
    path: str | None = None

    @property
    def pinned(self) -> bool:
        """True when the revision is a full 40-hex commit (hf) or the source is not revisioned."""
        if self.scheme != "hf":
            return True
        return bool(self.revision and _COMMIT_RE.match(self.revision))

    def with_revision(self, revision: str) -> "SourceRef":
        """The same hf source pinned to ``revision`` (a 40-hex commit)."""
        if self.scheme != "hf":
            return self
        prefix = "" if self.repo_type == "model" else f"{self.repo_type}s/"
        url = f"hf://{prefix}{self.repo_id}@{revision}/{self.path}"
        return SourceRef("hf", url, self.repo_id, self.repo_type, revision, self.path)


def parse_source(url: str) -> SourceRef:
    """Parse a source URL; raise ValueError with a plain reason when it is not one hubctl can fetch."""
    if not isinstance(url, str) or not url.strip():
        raise ValueError("source is empty")
    url = url.strip()
    if url.startswith("hf://"):
        rest = url[len("hf://") :]
        repo_type = "model"
        first = rest.split("/", 1)[0]
        if first in _HF_REPO_TYPES:
            repo_type = first[:-1]
            rest = rest.split("/", 1)[1] if "/" in rest else ""
        parts = rest.split("/")
        if len(parts) < 3 or not parts[0] or not parts[1]:
            raise ValueError(f"'{url}' is not hf://org/repo[@revision]/path")
        org, repo_rev = parts[0], parts[1]
        path = "/".join(parts[2:])
        revision = None
        if "@" in repo_rev:
            repo, revision = repo_rev.split("@", 1)
            if not revision:
                raise ValueError(f"'{url}' has an empty revision after '@'")
        else:
            repo = repo_rev
        if not path or path.endswith("/") or ".." in path.split("/"):
            raise ValueError(f"'{url}' does not name a file inside the repository")
        return SourceRef("hf", url, f"{org}/{repo}", repo_type, unquote(revision) if revision else None, path)
    if url.startswith("civitai:"):
        if not _CIVITAI_RE.match(url):
            raise ValueError(f"'{url}' is not civitai:VERSION_ID or civitai:VERSION_ID/FILE_ID (numbers)")
        return SourceRef("civitai", url)
    split = urlsplit(url)
    if split.scheme in ("https", "http"):
        if not split.netloc:
            raise ValueError(f"'{url}' has no host")
        return SourceRef(split.scheme, url)  # type: ignore[arg-type]
    if split.scheme == "file":
        if split.netloc not in ("", "localhost"):
            raise ValueError(f"'{url}' names a remote host; file:// URLs must be local")
        return SourceRef("file", url, path=unquote(split.path))
    if split.scheme == "" or (len(split.scheme) == 1 and url[1:3] in (":\\", ":/")):  # plain path / C:\...
        return SourceRef("file", Path(url).expanduser().resolve().as_uri(), path=str(Path(url).expanduser()))
    raise ValueError(f"'{url}' has an unknown URL scheme '{split.scheme}' (expected hf://, https://, http://, file:// or civitai:)")


def local_source_under(source: str, base: Path) -> str:
    """``source`` with a relative local path (``files/x.safetensors``, ``file:files/x``) made absolute under
    ``base`` as a ``file://`` URL; any other source unchanged."""
    src = parse_source(source)
    if src.scheme != "file":
        return source
    raw = source.strip()
    path = unquote(urlsplit(raw).path) if raw.startswith("file:") else raw
    p = Path(path).expanduser()
    if p.is_absolute() or re.match(r"^[A-Za-z]:[\\/]", path):
        return source
    return (Path(base) / p).resolve().as_uri()


# --------------------------------------------------------------------------------------------- models


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class FileRef(_Model):
    """One file of a variant: where it sits inside the package, how big it is, its hash, where it comes from."""

    path: str = Field(description="Path of the file inside the package (POSIX, relative, no '..').")
    size: Optional[int] = Field(default=None, ge=0, description="Size in bytes; pinned at lock time when absent.")
    sha256: Optional[str] = Field(
        default=None,
        description="Hex sha256 (64 digits, optionally prefixed 'sha256:'); pinned at lock time when absent.",
        json_schema_extra={"pattern": "^(sha256:)?[0-9a-fA-F]{64}$"},
    )
    source: str = Field(
        description="hf://org/repo[@revision]/path, https://..., file://..., or civitai:VERSION_ID[/FILE_ID]",
        json_schema_extra={"pattern": "^(hf://|https?://|file://|civitai:|[^:]*$)"},
    )

    @field_validator("path")
    @classmethod
    def _relative_path(cls, v: str) -> str:
        return check_file_path(v)

    @field_validator("sha256", mode="before")
    @classmethod
    def _sha256(cls, v: Any) -> Any:
        if v is None:
            return v
        if not isinstance(v, str):
            raise ValueError("sha256 must be a string of 64 hex digits")
        s = v.strip().lower()
        if s.startswith("sha256:"):
            s = s[len("sha256:") :]
        if not _SHA256_RE.match(s):
            raise ValueError(f"'{v}' is not a sha256 (64 hex digits, got {len(s)} characters)")
        return s

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        check_text(v, "source")
        parse_source(v)
        return v

    @property
    def source_ref(self) -> SourceRef:
        return parse_source(self.source)


def _no_repeats(items: str, field: str, values: list[str]) -> None:
    """ValueError naming the first value that appears twice (``files[2].path: 'x' appears twice``)."""
    seen: set[str] = set()
    for i, v in enumerate(values):
        if v in seen:
            raise ValueError(f"{items}[{i}].{field}: '{v}' appears twice")
        seen.add(v)


class Variant(_Model):
    """A concrete file set of one version: precision and layout."""

    name: str = Field(description="Variant name, e.g. 'fp16', 'fp32', 'single-file-fp16'.")
    dtype: Optional[str] = Field(default=None, description="fp32 | fp16 | bf16 | fp8 | int8 | ...")
    layout: Optional[Layout] = Field(default=None, description="diffusers folder or single file.")
    files: list[FileRef] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_variant_name(v)

    @model_validator(mode="after")
    def _unique_paths(self) -> "Variant":
        _no_repeats("files", "path", [f.path for f in self.files])
        return self

    @property
    def size(self) -> int | None:
        """Total bytes, or None when any file's size is unknown."""
        sizes = [f.size for f in self.files]
        return None if any(s is None for s in sizes) else sum(sizes)  # type: ignore[misc]


class Version(_Model):
    """One PEP 440 version of a package, with its family and compatibility."""

    version: str = Field(description="PEP 440 version, e.g. '1.4', '2.0', '2.1b1'.")
    family: str = Field(description="Family id from families.toml: sd1, sd2, sdxl, ...")
    prediction: Optional[Prediction] = Field(default=None, description="epsilon | v_prediction (bases).")
    task: str = Field(default="normal", description="normal | inpaint | depth | ... (what `inspect` calls variant).")
    resolution: Optional[int] = Field(default=None, gt=0, description="Native resolution in pixels.")
    requires: list[str] = Field(default_factory=list, description="Requirements on other packages (PEP 508 names + specifiers).")
    trigger: list[str] = Field(default_factory=list, description="Trigger words for prompts.")
    tokens: list[str] = Field(default_factory=list, description="Embedding tokens, e.g. '<cat-toy>'.")
    released: Optional[str] = Field(default=None, description="Release date (YYYY-MM-DD).")
    license: Optional[str] = Field(default=None, description="Licence of this version when it differs from the package's.")
    yanked: bool = False
    notes: Optional[str] = None
    variants: list[Variant] = Field(min_length=1)

    @field_validator("version")
    @classmethod
    def _pep440(cls, v: str) -> str:
        try:
            PEP440Version(v)
        except InvalidVersion:
            raise ValueError(f"'{v}' is not a PEP 440 version") from None
        return v

    @field_validator("family")
    @classmethod
    def _family(cls, v: str) -> str:
        return check_family_id(v)

    @field_validator("requires")
    @classmethod
    def _requires(cls, v: list[str]) -> list[str]:
        for i, r in enumerate(v):
            try:
                check_requirement(r)
            except ValueError as e:
                raise ValueError(f"[{i}]: {e}") from None
        return v

    @model_validator(mode="after")
    def _unique_variants(self) -> "Version":
        _no_repeats("variants", "name", [v.name for v in self.variants])
        return self

    @property
    def parsed(self) -> PEP440Version:
        return PEP440Version(self.version)

    @property
    def requirements(self) -> list[Requirement]:
        return [Requirement(r) for r in self.requires]


class Manifest(_Model):
    """A package: a name, a kind, and its versions."""

    name: str = Field(description="Package name (lower-case; compared after PEP 503 normalisation).")
    kind: Kind
    summary: str = ""
    description: Optional[str] = None
    license: Optional[str] = None
    homepage: Optional[str] = None
    authors: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    versions: list[Version] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_package_name(v)

    @model_validator(mode="after")
    def _unique_versions(self) -> "Manifest":
        seen: dict[PEP440Version, str] = {}
        for i, ver in enumerate(self.versions):
            pv = ver.parsed
            if pv in seen:
                raise ValueError(f"versions[{i}].version: '{ver.version}' duplicates '{seen[pv]}'")
            seen[pv] = ver.version
        return self

    @property
    def canonical_name(self) -> str:
        return canonicalize_name(self.name)

    def get_version(self, version: str) -> Version | None:
        want = PEP440Version(version)
        return next((v for v in self.versions if v.parsed == want), None)


# --------------------------------------------------------------------------------------------- I/O


def _loc_to_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def format_validation_error(err: ValidationError) -> str:
    """One line for a pydantic error: ``versions[0].version: 'x' is not a PEP 440 version``."""
    errors = err.errors()
    first = errors[0]
    loc = _loc_to_path(tuple(first.get("loc", ())))
    msg = str(first.get("msg", "invalid"))
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    # a model-level validator reports its own sub-path first ("files[1].path: ...")
    if ": " in msg and re.match(r"^[\w\[\].]+: ", msg):
        sub, msg = msg.split(": ", 1)
        loc = f"{loc}.{sub}" if loc and not sub.startswith("[") else f"{loc}{sub}"
    if first.get("type") == "extra_forbidden":
        msg = "unknown field"
    elif first.get("type") == "missing":
        msg = "required field is missing"
    elif first.get("type") == "literal_error":
        msg = f"{first.get('input')!r} is not one of: {msg.split('Input should be ', 1)[-1]}"
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return one_line(f"{loc}: {msg}{more}" if loc else f"{msg}{more}")


def parse_manifest(
    data: dict[str, Any],
    *,
    origin: str = "<manifest>",
    known_families: Collection[str] | None = None,
    expected_kind: str | None = None,
    expected_name: str | None = None,
) -> Manifest:
    """Validate a TOML mapping into a Manifest; raise BadInput with one line naming ``origin``."""
    try:
        m = Manifest.model_validate(data)
    except ValidationError as e:
        raise BadInput(format_validation_error(e), context=origin) from None
    if expected_kind is not None and m.kind != expected_kind:
        raise BadInput(one_line(f"kind: '{m.kind}' does not match its folder '{expected_kind}'"), context=origin)
    if expected_name is not None and canonicalize_name(expected_name) != m.canonical_name:
        raise BadInput(one_line(f"name: '{m.name}' does not match its file name '{expected_name}'"), context=origin)
    if known_families is not None:
        for i, v in enumerate(m.versions):
            try:
                check_family_id(v.family, known_families)
            except ValueError as e:
                raise BadInput(f"versions[{i}].family: {e}", context=origin) from None
    return m


def load_manifest(
    path: Path,
    *,
    known_families: Collection[str] | None = None,
    check_location: bool = True,
) -> Manifest:
    """Read and validate one manifest file. With ``check_location`` the kind must match the parent folder
    and the name the file stem (the registry layout ``manifests/<kind>/<name>.toml``)."""
    origin = str(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise BadInput(f"cannot read manifest ({e.strerror or e})", context=origin) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadInput("is not UTF-8 text", context=origin) from None
    except PARSE_ERRORS as e:
        raise BadInput(f"invalid TOML: {parse_failure(e)}", context=origin) from None
    expected_kind = path.parent.name if check_location and path.parent.name in KINDS else None
    expected_name = path.stem if check_location else None
    return parse_manifest(
        data, origin=origin, known_families=known_families, expected_kind=expected_kind, expected_name=expected_name
    )


def with_local_sources_under(manifest: Manifest, base: Path) -> Manifest:
    """The manifest with every relative local ``source`` made absolute under ``base`` (its registry's
    folder): what a registry folder means by ``source = "files/x.safetensors"``."""
    changed = False
    versions = []
    for v in manifest.versions:
        variants = []
        for var in v.variants:
            files = []
            for f in var.files:
                new = local_source_under(f.source, base)
                changed |= new != f.source
                files.append(f if new == f.source else f.model_copy(update={"source": new}))
            variants.append(var.model_copy(update={"files": files}))
        versions.append(v.model_copy(update={"variants": variants}))
    return manifest.model_copy(update={"versions": versions}) if changed else manifest


def dump_manifest(manifest: Manifest) -> str:
    """TOML text for a manifest (fields in model order, empty values left out)."""
    import tomli_w

    data = manifest.model_dump(mode="json", exclude_none=True, exclude_defaults=False)

    def prune(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: prune(v) for k, v in obj.items() if v not in ([], "", None) and not (k == "yanked" and v is False) and not (k == "task" and v == "normal")}
        if isinstance(obj, list):
            return [prune(x) for x in obj]
        return obj

    return tomli_w.dumps(prune(data))
