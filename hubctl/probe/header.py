"""The strict safetensors header reader: bytes -> a validated :class:`Header`. Reads the 8-byte length
and the JSON header only; never reads, allocates or trusts tensor data, and never allocates memory in
proportion to a size the header claims.

Validation (the safetensors spec, as the Rust crate enforces it): header length within bounds, UTF-8
JSON object starting with ``{``, no duplicate keys, entries ``{"dtype", "shape", "data_offsets"}`` with a
known dtype and non-negative integer shape and offsets, ``prod(shape) * dtype bits / 8 == end - begin``,
offsets covering the data section exactly (no holes, no overlaps), ``__metadata__`` str -> str, and
``8 + N + data length == file size``. A file shorter than that is an :class:`IncompleteFile`
("incomplete download: expected N bytes, found M"); anything else wrong is a :class:`BadInput`.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Mapping

from hubctl.errors import BadInput, IncompleteFile

__all__ = [
    "DTYPE_BITS",
    "MAX_HEADER_BYTES",
    "TensorInfo",
    "Header",
    "parse_header_json",
    "parse_header_prefix",
    "read_header",
    "header_length",
    "open_regular",
]

# bits per element, from the safetensors crate's Dtype::bitsize()
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8,
    "F8_E8M0": 8, "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32, "C64": 64, "F64": 64, "I64": 64, "U64": 64,
}
MAX_HEADER_BYTES = 100_000_000  # the Rust crate's limit
_MAX_DIMS = 64


@dataclass(frozen=True)
class TensorInfo:
    """One tensor entry of a header (no data)."""

    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        return self.end - self.begin


@dataclass(frozen=True)
class Header:
    """A validated safetensors header: tensors by name (file order), metadata, and the byte layout."""

    tensors: Mapping[str, TensorInfo]
    metadata: Mapping[str, str]
    header_len: int  # N, the JSON length
    data_len: int
    origin: str = ""
    component: str = ""  # for a diffusers folder: "unet", "text_encoder", ...
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def data_start(self) -> int:
        return 8 + self.header_len

    @property
    def file_size(self) -> int:
        return 8 + self.header_len + self.data_len

    def shape(self, name: str) -> tuple[int, ...] | None:
        t = self.tensors.get(name)
        return t.shape if t else None

    def __iter__(self) -> Iterator[str]:
        return iter(self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)


def _bad(origin: str, msg: str) -> BadInput:
    return BadInput(f"not a valid safetensors file: {msg}", context=origin or None)


def _pairs_no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


class _DuplicateKey(Exception):
    pass


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _is_uint(v: Any) -> bool:
    return type(v) is int and v >= 0


def header_length(prefix: bytes, *, origin: str = "", file_size: int | None = None) -> int:
    """N from the first 8 bytes, bounds-checked (and against ``file_size`` when known)."""
    if len(prefix) < 8:
        if file_size is not None and file_size < 8:
            raise IncompleteFile(f"incomplete download: expected at least 8 bytes, found {file_size}", context=origin or None)
        raise _bad(origin, f"file is only {len(prefix)} bytes long")
    n = int.from_bytes(prefix[:8], "little")
    if n < 2:
        raise _bad(origin, f"header length {n} is too small")
    if n > MAX_HEADER_BYTES:
        raise _bad(origin, f"header length {n} exceeds the limit of {MAX_HEADER_BYTES} bytes (not a safetensors file?)")
    if file_size is not None and 8 + n > file_size:
        raise IncompleteFile(f"incomplete download: expected at least {8 + n} bytes, found {file_size}", context=origin or None)
    return n


def parse_header_json(raw: bytes, *, origin: str = "", file_size: int | None = None) -> Header:
    """Validate the N JSON bytes of a header (pure). ``file_size``, when known, must match the layout."""
    n = len(raw)
    if not raw[:1] == b"{":
        raise _bad(origin, "header does not start with '{'")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad(origin, "header is not UTF-8") from None
    try:
        obj = json.loads(text, object_pairs_hook=_pairs_no_dupes, parse_constant=_reject_constant)
    except _DuplicateKey as e:
        raise _bad(origin, f"key {str(e.args[0])[:80]!r} appears twice in the header") from None
    except RecursionError:
        raise _bad(origin, "header JSON is nested too deeply") from None
    except ValueError as e:  # JSONDecodeError, huge ints, NaN/Infinity
        raise _bad(origin, f"header is not valid JSON ({str(e)[:80]})") from None
    if not isinstance(obj, dict):
        raise _bad(origin, "header is not a JSON object")
    metadata: dict[str, str] = {}
    tensors: dict[str, TensorInfo] = {}
    for name, entry in obj.items():
        if name == "__metadata__":
            if entry is None:
                continue
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise _bad(origin, "__metadata__ must map strings to strings")
            metadata = entry
            continue
        where = f"tensor {name[:80]!r}"
        if not isinstance(entry, dict):
            raise _bad(origin, f"{where} is not an object")
        extra_keys = set(entry) - {"dtype", "shape", "data_offsets"}
        if extra_keys or len(entry) != 3:
            raise _bad(origin, f"{where} must have exactly dtype, shape and data_offsets")
        dtype, shape, offs = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
            raise _bad(origin, f"{where} has an unknown dtype {str(dtype)[:20]!r}")
        if not isinstance(shape, list) or len(shape) > _MAX_DIMS or not all(_is_uint(d) for d in shape):
            raise _bad(origin, f"{where} has an invalid shape")
        if not isinstance(offs, list) or len(offs) != 2 or not all(_is_uint(o) for o in offs):
            raise _bad(origin, f"{where} has invalid data_offsets")
        begin, end = offs
        if end < begin:
            raise _bad(origin, f"{where} ends before it begins")
        numel = 1
        for d in shape:
            numel *= d
        bits = numel * DTYPE_BITS[dtype]
        if bits % 8 or bits // 8 != end - begin:
            raise _bad(origin, f"{where}: shape {list(shape)[:8]} x {dtype} is not {end - begin} bytes")
        tensors[name] = TensorInfo(dtype, tuple(shape), begin, end)
    pos = 0
    for t in sorted(tensors.values(), key=lambda t: (t.begin, t.end)):
        if t.begin != pos:
            what = "overlap" if t.begin < pos else "a hole"
            raise _bad(origin, f"tensor data offsets leave {what} at byte {min(pos, t.begin)}")
        pos = t.end
    data_len = pos
    if file_size is not None:
        expected = 8 + n + data_len
        if file_size < expected:
            raise IncompleteFile(f"incomplete download: expected {expected} bytes, found {file_size}", context=origin or None)
        if file_size > expected:
            raise _bad(origin, f"file has {file_size - expected} bytes after the last tensor (expected {expected} bytes, found {file_size})")
    return Header(tensors=tensors, metadata=metadata, header_len=n, data_len=data_len, origin=origin)


def parse_header_prefix(buf: bytes, *, origin: str = "", file_size: int | None = None) -> Header:
    """Parse a header from the first bytes of a file (at least 8 + N of them)."""
    n = header_length(buf, origin=origin, file_size=file_size)
    if len(buf) < 8 + n:
        if file_size is None:
            raise IncompleteFile(f"incomplete download: expected at least {8 + n} bytes, found {len(buf)}", context=origin or None)
        raise _bad(origin, f"header needs {8 + n} bytes, only {len(buf)} were read")
    return parse_header_json(bytes(buf[8 : 8 + n]), origin=origin, file_size=file_size)


def read_up_to(f: Any, n: int, *, chunk: int = 8 << 20) -> bytes:
    """Up to ``n`` bytes from a stream (a file or an HTTP response), fewer only where it ends first;
    read ``chunk`` bytes at a time."""
    chunks = []
    left = n
    while left > 0:
        b = f.read(min(left, chunk))
        if not b:
            break
        chunks.append(b)
        left -= len(b)
    return b"".join(chunks)


_NOT_REGULAR = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                (stat.S_ISSOCK, "a socket"))


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """Open a file for reading only if it is a regular file (after symlinks): a FIFO, device or socket is a
    BadInput naming it, at once (opened non-blocking, so a FIFO with no writer cannot stall the caller; the
    type is checked on the open descriptor, so it cannot change between the check and the read)."""
    origin = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise BadInput("no such file", context=origin) from None
    except PermissionError:
        raise BadInput("permission denied", context=origin) from None
    except OSError as e:  # a socket (ENXIO), a loop of links, ...
        raise BadInput(f"cannot read ({e.strerror or e}); not a regular file?", context=origin) from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise BadInput("is a folder, not a safetensors file", context=origin)
        if not stat.S_ISREG(mode):
            what = next((w for test, w in _NOT_REGULAR if test(mode)), "a special file")
            raise BadInput(f"not a regular file ({what}); refusing to read it", context=origin)
        if hasattr(os, "O_NONBLOCK"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_header(path: str | os.PathLike[str]) -> Header:
    """Read and validate the header of a local ``.safetensors`` file (reads 8 + N bytes, nothing more)."""
    p = Path(path)
    origin = str(p)
    try:
        with open_regular(p) as f:
            size = os.fstat(f.fileno()).st_size
            prefix = read_up_to(f, 8)
            n = header_length(prefix, origin=origin, file_size=size)
            raw = read_up_to(f, n)
    except FileNotFoundError:
        raise BadInput("no such file", context=origin) from None
    except IsADirectoryError:
        raise BadInput("is a folder, not a safetensors file", context=origin) from None
    except PermissionError:
        raise BadInput("permission denied", context=origin) from None
    except OSError as e:
        raise BadInput(f"cannot read ({e.strerror or e})", context=origin) from None
    if len(raw) < n:
        raise IncompleteFile(f"incomplete download: expected at least {8 + n} bytes, found {8 + len(raw)}", context=origin)
    return parse_header_json(raw, origin=origin, file_size=size)


def read_tensor_bytes(path: str | os.PathLike[str], header: Header, name: str, limit: int = 64) -> bytes | None:
    """The raw bytes of one small tensor (e.g. a LoRA ``alpha`` scalar); None when larger than ``limit``."""
    t = header.tensors.get(name)
    if t is None or t.nbytes > limit:
        return None
    with open_regular(path) as f:
        f.seek(header.data_start + t.begin)
        return f.read(t.nbytes)
