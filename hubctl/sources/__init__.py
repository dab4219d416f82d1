"""Sources: where bytes come from, behind one protocol (see base.py).

    source_for("hf://org/repo@rev/path")   -> HfSource    (huggingface_hub's metadata calls + ranged HTTP)
    source_for("https://host/file")        -> HttpSource  (redirects, Range resume, parallel parts)
    source_for("file:///abs/path" or path) -> LocalSource

Modules are imported on first use so that the CLI stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hubctl.errors import BadInput, redact

if TYPE_CHECKING:
    from hubctl.sources.base import Source

__all__ = ["source_for"]


def source_for(url: str) -> "Source":
    """The source for a URL or plain path; BadInput (exit 2) for one hubctl cannot fetch."""
    from hubctl.manifest import parse_source

    try:
        ref = parse_source(url)
    except ValueError as e:
        raise BadInput(redact(str(e))) from None
    if ref.scheme == "hf":
        from hubctl.sources.hf import HfSource

        return HfSource(ref)
    if ref.scheme in ("http", "https"):
        from hubctl.sources.http import HttpSource

        return HttpSource(ref.url)
    from hubctl.sources.local import LocalSource

    return LocalSource(ref.url, ref.path or "")
