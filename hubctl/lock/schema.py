"""The lock file's JSON Schema (``schemas/lock.schema.json``), from pydantic models that mirror
:func:`hubctl.lock.lockfile.loads_lock` (tests/lock/test_schema.py keeps the two in agreement). Import-cheap:
pydantic is imported only when the schema is asked for.
"""

from __future__ import annotations

from typing import Any

__all__ = ["lock_file_schema"]


def lock_file_schema() -> dict[str, Any]:
    """JSON Schema of a lock file (``schemas/lock.schema.json``), from pydantic models that mirror
    :func:`loads_lock` (tests/lock/test_schema.py keeps the two in agreement)."""
    from typing import Dict, List, Literal, Optional

    from pydantic import BaseModel, ConfigDict, Field

    from hubctl.registry.manifest import Kind

    class _M(BaseModel):
        model_config = ConfigDict(extra="forbid", populate_by_name=True)

    class Hashes(_M):
        sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    class File(_M):
        """One pinned file of a package."""

        path: str = Field(description="Path inside the package (POSIX, relative, no '..').")
        url: str = Field(description="Source: hf://org/repo@<40-hex commit>/path, https://..., file://...")
        requested_revision: Optional[str] = Field(default=None, alias="requested-revision", description="The branch or tag the manifest asked for.")
        commit_id: Optional[str] = Field(default=None, alias="commit-id", pattern=r"^[0-9a-f]{40}$", description="The commit an hf:// url is pinned to.")
        size: int = Field(ge=0)
        hashes: Hashes

    class Package(_M):
        """One resolved package: exact version and variant."""

        name: str = Field(description="PEP 503 normalised name.")
        version: str = Field(description="PEP 440 version.")
        kind: Kind
        family: str
        variant: str
        prediction: Optional[str] = None
        layout: Optional[str] = None
        dtype: Optional[str] = None
        requires: List[str] = Field(default_factory=list)
        tokens: List[str] = Field(default_factory=list)
        trigger: List[str] = Field(default_factory=list)
        files: List[File] = Field(min_length=1)

    class Settings(_M):
        pre: bool = False
        dtype: Optional[str] = None
        vram: Optional[str | int] = None

    class LockFile(_M):
        """hubctl.lock / SCRIPT.py.lock: the resolved, exact set (PEP 751 vocabulary where it fits)."""

        model_config = ConfigDict(extra="forbid", populate_by_name=True, title="LockFile")
        lock_version: Literal["1.0"] = Field(alias="lock-version")
        created_by: str = Field(default="hubctl", alias="created-by")
        inputs_digest: str = Field(alias="inputs-digest", pattern=r"^sha256:[0-9a-f]{64}$", description="sha256 of the normalised requirements and settings.")
        requires: List[str] = Field(default_factory=list)
        settings: Optional[Settings] = None
        packages: List[Package] = Field(default_factory=list)
        tool: Optional[Dict[str, Any]] = None

    return LockFile.model_json_schema(by_alias=True)
