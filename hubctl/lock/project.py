"""The project file and inline script metadata: what a project or a script asks for.

- ``hubctl.toml``: ``requires = [...]`` plus ``[settings]`` (``dtype``, ``vram``, ``pre``);
- ``[tool.hubctl]`` in ``pyproject.toml`` (same keys; ``[tool.hubctl.settings]``);
- a script's inline block, like PEP 723 (also read from ``[tool.hubctl]`` inside a PEP 723
  ``# /// script`` block)::

      # /// hubctl
      # requires = ["stable-diffusion>=1.4,<2", "arcane-style"]
      # [settings]
      # dtype = "fp16"
      # ///

Reading validates everything once and raises BadInput with one line naming the file and the field.
Editing (``hubctl add`` / ``remove``) rewrites only the ``requires`` array in place, so comments and
the rest of the file stay as the user wrote them. This module never resolves, locks or fetches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Mapping

from hubctl.errors import BadInput, PARSE_ERRORS, parse_failure

from hubctl.tomlcompat import tomllib

__all__ = [
    "PROJECT_FILE",
    "LOCK_FILE",
    "DTYPES",
    "Settings",
    "Project",
    "find_project",
    "project_for_lock",
    "read_project_file",
    "read_script",
    "parse_inline_block",
    "new_project",
    "with_added",
    "with_removed",
    "write_requires",
]

PROJECT_FILE = "hubctl.toml"
LOCK_FILE = "hubctl.lock"
DTYPES = ("fp32", "fp16", "bf16", "fp8", "int8")
ProjectKind = Literal["hubctl.toml", "pyproject.toml", "script"]


@dataclass(frozen=True)
class Settings:
    """Resolution settings: dtype preference, VRAM budget (as written, e.g. ``"10GiB"``), pre-releases."""

    dtype: str | None = None
    vram: str | None = None
    pre: bool = False

    @property
    def vram_bytes(self) -> int | None:
        from hubctl.resolve import parse_vram

        return parse_vram(self.vram)


@dataclass(frozen=True)
class Project:
    """What a project file or a script asks for. ``path`` is the file the requirements live in."""

    path: Path
    kind: ProjectKind
    requires: tuple[str, ...] = ()
    settings: Settings = field(default_factory=Settings)

    @property
    def lock_path(self) -> Path:
        """``hubctl.lock`` beside the project file; ``s.py.lock`` beside a script."""
        if self.kind == "script":
            return self.path.with_name(self.path.name + ".lock")
        return self.path.with_name(LOCK_FILE)

    @property
    def root(self) -> Path:
        return self.path.parent

    def names(self) -> list[str]:
        from hubctl.resolve import parse_requirement

        return [parse_requirement(r).name for r in self.requires]


# --------------------------------------------------------------------------------------------- reading


def _fail(origin: str, where: str, msg: str) -> BadInput:
    return BadInput(f"{where}: {msg}" if where else msg, context=origin)


def _parse_table(data: Mapping[str, Any], *, origin: str, prefix: str, allowed_extra: set[str] = frozenset()) -> tuple[tuple[str, ...], Settings]:
    """Validate ``requires`` and ``settings`` from one table; ``prefix`` is the table's path for messages."""
    from hubctl.resolve import parse_requirement, parse_vram

    def at(key: str) -> str:
        return f"{prefix}.{key}" if prefix else key

    for k in data:
        if k not in {"requires", "settings", *allowed_extra}:
            raise _fail(origin, at(k), "unknown field (expected requires, settings)")
    requires = data.get("requires", [])
    if not isinstance(requires, list):
        raise _fail(origin, at("requires"), f"{requires!r} is not a list of requirement strings")
    for i, r in enumerate(requires):
        if not isinstance(r, str):
            raise _fail(origin, f"{at('requires')}[{i}]", f"{r!r} is not a string")
        try:
            parse_requirement(r)
        except BadInput as e:
            raise _fail(origin, f"{at('requires')}[{i}]", e.message) from None
    raw = data.get("settings", {})
    if not isinstance(raw, dict):
        raise _fail(origin, at("settings"), "must be a table")
    for k in raw:
        if k not in ("dtype", "vram", "pre"):
            raise _fail(origin, f"{at('settings')}.{k}", "unknown setting (expected dtype, vram, pre)")
    dtype = raw.get("dtype")
    if dtype is not None and (not isinstance(dtype, str) or dtype.lower() not in DTYPES):
        raise _fail(origin, f"{at('settings')}.dtype", f"{dtype!r} is not one of: {', '.join(DTYPES)}")
    vram = raw.get("vram")
    if vram is not None:
        try:
            parse_vram(vram, origin=f"{at('settings')}.vram")
        except BadInput as e:
            raise BadInput(e.message, context=origin) from None
    pre = raw.get("pre", False)
    if not isinstance(pre, bool):
        raise _fail(origin, f"{at('settings')}.pre", f"{pre!r} is not true or false")
    settings = Settings(dtype=dtype.lower() if dtype else None, vram=str(vram) if vram is not None else None, pre=pre)
    return tuple(requires), settings


def _load_toml(path: Path) -> dict[str, Any]:
    from hubctl.fsutil import read_text_input

    text = read_text_input(path)
    try:
        return tomllib.loads(text)
    except PARSE_ERRORS as e:
        raise BadInput(f"invalid TOML: {parse_failure(e)}", context=str(path)) from None


def read_project_file(path: Path) -> Project:
    """Read ``hubctl.toml`` or the ``[tool.hubctl]`` table of ``pyproject.toml``."""
    path = Path(path)
    data = _load_toml(path)
    if path.name == "pyproject.toml":
        table = data.get("tool", {}).get("hubctl") if isinstance(data.get("tool"), dict) else None
        if not isinstance(table, dict):
            raise BadInput("has no [tool.hubctl] table", context=str(path))
        requires, settings = _parse_table(table, origin=str(path), prefix="tool.hubctl")
        return Project(path, "pyproject.toml", requires, settings)
    requires, settings = _parse_table(data, origin=str(path), prefix="")
    return Project(path, "hubctl.toml", requires, settings)


def _has_tool_hubctl(pyproject: Path) -> bool:
    try:
        data = tomllib.loads(pyproject.read_text("utf-8"))
    except (OSError, *PARSE_ERRORS):
        return "[tool.hubctl" in pyproject.read_text("utf-8", errors="replace") if pyproject.exists() else False
    tool = data.get("tool")
    return isinstance(tool, dict) and "hubctl" in tool


def find_project(start: Path | None = None) -> Project | None:
    """The nearest ``hubctl.toml`` (or ``pyproject.toml`` with ``[tool.hubctl]``) from ``start`` upward."""
    here = Path(start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        f = d / PROJECT_FILE
        if f.is_file():
            return read_project_file(f)
        py = d / "pyproject.toml"
        if py.is_file() and _has_tool_hubctl(py):
            return read_project_file(py)
    return None


def project_for_lock(lock_path: Path) -> Project | None:
    """The project a lock file belongs to, when it sits beside it: ``S.py`` for ``S.py.lock``; the
    ``hubctl.toml`` (or ``pyproject.toml`` with ``[tool.hubctl]``) in the same folder for ``hubctl.lock``;
    else None (a lock on its own)."""
    lock_path = Path(lock_path).resolve()
    if lock_path.name.endswith(".py.lock"):
        script = lock_path.with_name(lock_path.name[: -len(".lock")])
        return read_script(script) if script.is_file() else None
    if lock_path.name != LOCK_FILE:
        return None
    f = lock_path.with_name(PROJECT_FILE)
    if f.is_file():
        return read_project_file(f)
    py = lock_path.with_name("pyproject.toml")
    if py.is_file() and _has_tool_hubctl(py):
        return read_project_file(py)
    return None


def new_project(directory: Path) -> Project:
    """A project that does not exist on disk yet (``hubctl add`` writes it)."""
    return Project(Path(directory).resolve() / PROJECT_FILE, "hubctl.toml")


# --------------------------------------------------------------------------------------------- scripts

_BLOCK_RE = re.compile(r"(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$")


def _block_content(match: re.Match[str]) -> str:
    return "".join(line[2:] if line.startswith("# ") else line[1:] for line in match.group("content").splitlines(keepends=True))


def parse_inline_block(text: str, *, origin: str = "<script>") -> tuple[tuple[str, ...], Settings]:
    """The requirements and settings of a script's ``# /// hubctl`` block (or ``[tool.hubctl]`` in its
    PEP 723 ``# /// script`` block). BadInput when there is none, two, an unclosed one, or bad TOML."""
    matches = [m for m in _BLOCK_RE.finditer(text + ("\n" if not text.endswith("\n") else ""))]
    ours = [m for m in matches if m.group("type") == "hubctl"]
    if len(ours) > 1 or len(re.findall(r"(?m)^# /// hubctl[ \t]*$", text)) > 1:
        raise BadInput("has more than one '# /// hubctl' block", context=origin)
    if ours:
        m = ours[0]
        line = text.count("\n", 0, m.start()) + 1
        try:
            data = tomllib.loads(_block_content(m))
        except PARSE_ERRORS as e:
            raise BadInput(f"the '# /// hubctl' block at line {line} is not valid TOML: {parse_failure(e)}", context=origin) from None
        return _parse_table(data, origin=origin, prefix="hubctl block")
    if re.search(r"(?m)^# /// hubctl\s*$", text):
        line = text.count("\n", 0, re.search(r"(?m)^# /// hubctl\s*$", text).start()) + 1  # type: ignore[union-attr]
        raise BadInput(f"the '# /// hubctl' block at line {line} is not closed by a '# ///' line (every line in it must start with '#')", context=origin)
    for m in matches:
        if m.group("type") == "script":
            try:
                data = tomllib.loads(_block_content(m))
            except PARSE_ERRORS as e:
                raise BadInput(f"the '# /// script' block is not valid TOML: {parse_failure(e)}", context=origin) from None
            tool = data.get("tool", {})
            if isinstance(tool, dict) and isinstance(tool.get("hubctl"), dict):
                return _parse_table(tool["hubctl"], origin=origin, prefix="tool.hubctl")
    raise BadInput("has no '# /// hubctl' block saying what it requires", context=origin)


def read_script(path: Path) -> Project:
    """The project a script declares inline."""
    from hubctl.fsutil import read_text_input

    path = Path(path)
    text = read_text_input(path, missing="no such script")
    requires, settings = parse_inline_block(text, origin=str(path))
    return Project(path.resolve(), "script", requires, settings)


# --------------------------------------------------------------------------------------------- editing


def with_added(project: Project, reqs: list[str]) -> Project:
    """Requirements with ``reqs`` added; one that names a package already required replaces it in place."""
    from hubctl.resolve import parse_requirement

    current = list(project.requires)
    for text in reqs:
        new = parse_requirement(text)
        for i, old in enumerate(current):
            if parse_requirement(old).name == new.name:
                current[i] = text.strip()
                break
        else:
            current.append(text.strip())
    return replace(project, requires=tuple(current))


def with_removed(project: Project, names: list[str]) -> Project:
    """Requirements without the packages ``names``; BadInput for a name the project does not require."""
    from packaging.utils import canonicalize_name

    from hubctl.resolve import parse_requirement

    drop = {canonicalize_name(n) for n in names}
    have = {parse_requirement(r).name for r in project.requires}
    missing = sorted(drop - have)
    if missing:
        raise BadInput(f"'{missing[0]}' is not in requires", context=str(project.path))
    return replace(project, requires=tuple(r for r in project.requires if parse_requirement(r).name not in drop))


def _format_requires(values: tuple[str, ...]) -> str:
    import json

    if not values:
        return "requires = []"
    return "requires = [\n" + "".join(f"    {json.dumps(v, ensure_ascii=False)},\n" for v in values) + "]"


def _array_end(text: str, start: int) -> int:
    """Index just past the ``]`` closing the array whose ``[`` is at ``start`` (strings and comments skipped)."""
    depth, i, n = 0, start, len(text)
    while i < n:
        ch = text[i]
        if ch in "\"'":
            triple = text[i : i + 3] == ch * 3
            q = ch * 3 if triple else ch
            j = i + len(q)
            while j < n and text[j : j + len(q)] != q:
                j += 2 if (ch == '"' and text[j] == "\\") else 1
            i = j + len(q)
            continue
        if ch == "#":
            nl = text.find("\n", i)
            i = n if nl < 0 else nl
            continue
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ValueError("unclosed array")


_HEADER_RE = re.compile(r"(?m)^[ \t]*\[")


def _edit_requires(text: str, header: str | None, values: tuple[str, ...]) -> str:
    """Replace (or insert) the ``requires`` array of the table ``header`` (None: the top level)."""
    if header is None:
        start = 0
    else:
        m = re.search(rf"(?m)^[ \t]*\[[ \t]*{re.escape(header)}[ \t]*\][ \t]*(#.*)?$", text)
        if m is None:
            sep = "" if not text or text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
            return f"{text}{sep}[{header}]\n{_format_requires(values)}\n"
        start = m.end() + 1 if m.end() < len(text) else m.end()
    nxt = _HEADER_RE.search(text, start)
    end = nxt.start() if nxt else len(text)
    key = re.compile(r"(?m)^[ \t]*requires[ \t]*=[ \t]*(?=\[)").search(text, start, end)
    if key is None:
        insert = _format_requires(values) + "\n"
        if header is None:
            return insert + ("\n" if text and not text.startswith("\n") else "") + text
        return text[:start] + insert + text[start:]
    close = _array_end(text, key.end())
    return text[: key.start()] + _format_requires(values) + text[close:]


def write_requires(project: Project) -> None:
    """Write ``project.requires`` into its file (created if needed), touching nothing else in it."""
    from hubctl.fsutil import atomic_write_text

    if project.kind == "script":
        raise BadInput("editing a script's inline block is not supported; edit the '# /// hubctl' block", context=str(project.path))
    path = project.path
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        text = ""
    header = "tool.hubctl" if project.kind == "pyproject.toml" else None
    try:
        new = _edit_requires(text, header, project.requires)
        check = tomllib.loads(new)
    except (ValueError, tomllib.TOMLDecodeError) as e:
        raise BadInput(f"cannot edit requires in place ({e}); edit the file by hand", context=str(path)) from None
    table = check.get("tool", {}).get("hubctl", {}) if header else check
    if tuple(table.get("requires", [])) != project.requires:
        raise BadInput("cannot edit requires in place; edit the file by hand", context=str(path))
    atomic_write_text(path, new)


# --------------------------------------------------------------------------------------------- schema


def project_file_schema() -> dict[str, Any]:
    """JSON Schema of ``hubctl.toml`` (and of ``[tool.hubctl]`` / a ``# /// hubctl`` block, which hold the
    same keys), from pydantic models that mirror the reader above."""
    from typing import List, Optional

    from pydantic import BaseModel, ConfigDict, Field

    class ProjectSettings(BaseModel):
        """Resolution settings."""

        model_config = ConfigDict(extra="forbid")
        dtype: Optional[Literal["fp32", "fp16", "bf16", "fp8", "int8"]] = Field(default=None, description="Preferred dtype of variants.")
        vram: Optional[str | int] = Field(default=None, description="VRAM budget: '10GiB', '12GB', '8000MiB' or bytes.")
        pre: bool = Field(default=False, description="Allow pre-releases.")

    class ProjectFile(BaseModel):
        """hubctl.toml: what a project asks for."""

        model_config = ConfigDict(extra="forbid", title="ProjectFile")
        requires: List[str] = Field(default_factory=list, description="Requirements: PEP 508 names with PEP 440 specifiers.")
        settings: Optional[ProjectSettings] = None

    return ProjectFile.model_json_schema()
