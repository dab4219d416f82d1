"""The strict safetensors header reader: real files written by safetensors itself and hand-made broken ones.
Every rejection is one line naming the file; a short file is an IncompleteFile with both byte counts."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from hubctl.errors import BadInput, IncompleteFile
from hubctl.probe.header import parse_header_json, parse_header_prefix, read_header
from tests.fixtures.sparse import write_safetensors


def _raw(header: dict | bytes, data: bytes = b"", n: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if n is None else n) + raw + data


def _write(tmp_path: Path, content: bytes, name: str = "x.safetensors") -> Path:
    p = tmp_path / name
    p.write_bytes(content)
    return p


def test_file_written_by_safetensors_reads_back_exactly(tmp_path: Path) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    p = tmp_path / "real.safetensors"
    save_file({"a": np.zeros((2, 3), np.float16), "b": np.zeros((4,), np.float32), "s": np.zeros((), np.int64),
               "empty": np.zeros((0, 5), np.float32)}, str(p), metadata={"k": "v"})
    h = read_header(p)
    assert {k: (t.dtype, t.shape) for k, t in h.tensors.items()} == {
        "a": ("F16", (2, 3)), "b": ("F32", (4,)), "s": ("I64", ()), "empty": ("F32", (0, 5))}
    assert h.metadata == {"k": "v"}
    assert h.file_size == p.stat().st_size


def test_truncated_file_is_an_incomplete_download_with_both_sizes(tmp_path: Path) -> None:
    p = write_safetensors(tmp_path / "big.safetensors", {"w": ("F16", [1000, 1000])})
    full = p.stat().st_size
    with open(p, "r+b") as f:
        f.truncate(full - 12345)
    with pytest.raises(IncompleteFile) as e:
        read_header(p)
    assert str(e.value) == f"{p}: incomplete download: expected {full} bytes, found {full - 12345}"


def test_file_cut_inside_the_header_is_incomplete(tmp_path: Path) -> None:
    p = write_safetensors(tmp_path / "h.safetensors", {f"t{i}": ("F16", [4]) for i in range(50)})
    raw = p.read_bytes()
    p.write_bytes(raw[:100])
    with pytest.raises(IncompleteFile, match=r"incomplete download: expected at least \d+ bytes, found 100"):
        read_header(p)


def test_file_shorter_than_the_length_prefix_is_incomplete(tmp_path: Path) -> None:
    with pytest.raises(IncompleteFile, match="found 3"):
        read_header(_write(tmp_path, b"\x01\x02\x03"))


@pytest.mark.parametrize(
    "content, message",
    [
        (_raw(b"{}", n=200_000_000), "exceeds the limit"),
        (_raw(b"not json"), "does not start with '{'"),
        (_raw(b'{"a": 1'), "not valid JSON"),
        (_raw(b"[1, 2]   "), "does not start"),
        (_raw({"a": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 1]}}, b"\0"), "unknown dtype"),
        (_raw({"a": {"dtype": "F16", "shape": [3], "data_offsets": [0, 4]}}, b"\0" * 4), "is not 4 bytes"),
        (_raw({"a": {"dtype": "F16", "shape": [2], "data_offsets": [4, 8]}}, b"\0" * 8), "hole"),
        (_raw({"a": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]},
               "b": {"dtype": "F16", "shape": [2], "data_offsets": [2, 6]}}, b"\0" * 6), "overlap"),
        (_raw({"a": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 9), "5 bytes after the last tensor"),
        (_raw({"a": {"dtype": "F16", "shape": [True], "data_offsets": [0, 2]}}, b"\0" * 2), "invalid shape"),
        (_raw({"a": {"dtype": "F16", "shape": [-1], "data_offsets": [0, 2]}}, b"\0" * 2), "invalid shape"),
        (_raw({"a": {"dtype": "F16", "shape": [1], "data_offsets": [2, 0]}}, b"\0" * 2), "ends before it begins"),
        (_raw({"a": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2], "extra": 1}}, b"\0" * 2), "exactly dtype"),
        (_raw({"__metadata__": {"k": 1}}), "__metadata__ must map strings to strings"),
        (_raw({"__metadata__": {"k": {"nested": "x"}}}), "__metadata__ must map strings to strings"),
        (_raw(b'{"a": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]}, "a": {"dtype": "F16", "shape": [1], "data_offsets": [2, 4]}}', b"\0" * 4),
         "appears twice"),
        (_raw(b'{"a": NaN}'), "not valid JSON"),
        (_raw(b"{" + b"[" * 100000 + b"}"), "JSON"),
        (_raw(b'{"a": "\xff\xfe"}'), "not UTF-8"),
        (_raw(b"{}", n=1), "too small"),
    ],
)
def test_broken_headers_are_refused_with_one_line(tmp_path: Path, content: bytes, message: str) -> None:
    p = _write(tmp_path, content)
    with pytest.raises(BadInput) as e:
        read_header(p)
    text = str(e.value)
    assert message in text
    assert text.startswith(str(p)) and "\n" not in text


def test_header_claiming_more_bytes_than_the_file_has_does_not_allocate(tmp_path: Path) -> None:
    p = _write(tmp_path, _raw(b"{}", n=99_000_000))
    with pytest.raises(IncompleteFile, match="expected at least 99000008 bytes, found 10"):
        read_header(p)


def test_padding_after_the_json_is_accepted() -> None:
    h = parse_header_json(b'{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}     ', file_size=None)
    assert h.tensors["a"].shape == (2,)


def test_sub_byte_dtypes_must_fill_whole_bytes() -> None:
    ok = parse_header_json(b'{"a":{"dtype":"F4","shape":[4],"data_offsets":[0,2]}}')
    assert ok.data_len == 2
    with pytest.raises(BadInput, match="is not"):
        parse_header_json(b'{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}')


def test_prefix_parser_reports_a_short_buffer_as_incomplete() -> None:
    raw = _raw({"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}, b"\0")
    assert parse_header_prefix(raw).tensors["a"].nbytes == 1
    with pytest.raises(IncompleteFile):
        parse_header_prefix(raw[:20])


def test_missing_file_and_folder_are_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no such file"):
        read_header(tmp_path / "nope.safetensors")
    with pytest.raises(BadInput, match="is a folder"):
        read_header(tmp_path)
