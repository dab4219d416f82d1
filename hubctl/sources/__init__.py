"""Fetch: where bytes come from, behind one protocol (see base.py), and the
orchestration that drives them into the store.

    source_for("hf://org/repo@rev/path")   -> HfSource    (huggingface_hub's metadata calls + ranged HTTP)
    source_for("https://host/file")        -> HttpSource  (redirects, Range resume, parallel parts)
    source_for("file:///abs/path" or path) -> LocalSource
    source_for("civitai:VERSION[/FILE]")   -> CivitaiSource (the REST API names the file; then HttpSource)

    base.py           the Source protocol and the values it returns
    hf.py             hf:// through huggingface_hub's metadata calls
    http.py           https:// downloads: redirects, Range resume, parallel parts, retries
    http_response.py  reading one HTTP response (body stream, Content-Range, ETag)
    retry.py          the one retry policy (Budget: tries, backoff, the retry line, the stall bound) and the
                      low-speed watchdog (Watch), for every network request
    local.py          file:// and plain paths
    civitai.py        Civitai's REST API (model versions, lookup by hash, AIRs, baseModel -> family) and civitai:
    fetch.py          pin_file (a manifest file -> commit, size, sha256) and install_packages (every file of
                      a set of locked packages into the store, one download per unique sha256, then recorded)

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
    from hubctl.registry.manifest import parse_source

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
    if ref.scheme == "civitai":
        from hubctl.sources.civitai import CivitaiSource

        return CivitaiSource(ref.url)
    from hubctl.sources.local import LocalSource

    return LocalSource(ref.url, ref.path or "")
