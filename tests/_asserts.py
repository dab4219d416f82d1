"""Shared assertions on what a user sees for bad input: one line, naming the file, exit code 2."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from hubctl.errors import BadInput


def bad_input_line(call: Callable[[], Any], origin: object) -> str:
    """Run ``call``; it must raise BadInput (exit 2) whose message is one line starting with
    ``"<origin>: "``. Returns the message for the caller's own checks."""
    with pytest.raises(BadInput) as e:
        call()
    msg = str(e.value)
    assert msg.startswith(f"{origin}: ") and "\n" not in msg, msg
    assert e.value.exit_code == 2
    return msg
