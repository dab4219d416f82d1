"""How text from data is shown to people: terminal-safe strings and counted nouns. Pure; no I/O.

- :func:`safe`: every character that can drive a terminal (ESC and so CSI/OSC sequences, the other C0
  controls, DEL, the C1 controls U+0080..U+009F, bidirectional overrides and isolates, line and paragraph
  separators) replaced by a visible escape such as ``\\x1b``. Names, summaries, safetensors metadata,
  tensor keys, paths and error lines all come from files and servers hubctl does not trust; every
  renderer passes them through here (the CLI's rich consoles do it for everything they print).
- :func:`json_safe`: the same for JSON text, as ``\\u`` escapes (``json.dumps`` already escapes C0, not C1).
- :func:`plural`: ``plural(1, "package")`` -> ``"1 package"``, ``plural(2, "try", "tries")`` -> ``"2 tries"``.

Must not import anything heavy: the CLI, the progress bars and library messages use it.
"""

from __future__ import annotations

__all__ = ["safe", "json_safe", "plural"]

_FORMAT_CONTROLS = (0x061C, 0x200E, 0x200F, 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A))


def _table(keep: str, fmt: str) -> dict[int, str]:
    table: dict[int, str] = {}
    for c in (*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)):
        if chr(c) not in keep:
            table[c] = fmt.format(c)
    for c in _FORMAT_CONTROLS:
        table[c] = f"\\u{c:04x}"
    return table


_ONE_LINE = _table("", "\\x{:02x}")
_LINES = _table("\n\t", "\\x{:02x}")
_JSON = {c: f"\\u{c:04x}" for c in (0x7F, *range(0x80, 0xA0), *_FORMAT_CONTROLS)}


def safe(text: str, *, newlines: bool = False) -> str:
    """``text`` with terminal control characters shown as visible escapes (``\\x1b``, ``\\x9b``, ``\\u202e``).
    Newlines and tabs are escaped too unless ``newlines`` (for text printed as several lines)."""
    return str(text).translate(_LINES if newlines else _ONE_LINE)


def json_safe(text: str) -> str:
    """JSON text with DEL, C1 controls and bidi/format controls written as ``\\uXXXX`` (still the same JSON)."""
    return text.translate(_JSON)


def plural(n: int, noun: str, plural_form: str | None = None) -> str:
    """``"1 file"``, ``"3 files"``; ``plural_form`` for irregular nouns (``"try"``/``"tries"``)."""
    return f"{n} {noun if n == 1 else (plural_form or noun + 's')}"
