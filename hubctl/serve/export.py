"""``hubctl runs export DIR``: the gallery as static files anyone can open without a server.

Owns writing ``DIR/index.html`` (the page of hubctl.serve.gallery with the runs embedded), ``DIR/images/RUN-K.png``
(each PNG copied with its chunks, only when its sha256 is the one the run record holds) and ``DIR/runs.json``.
The folder is built beside DIR and swapped in, so DIR is either the old export or the new one; a DIR that
holds anything but a previous export is refused, never overwritten. No FastAPI, no torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hubctl.errors import BadInput

__all__ = ["MARKER", "export_gallery"]

MARKER = ".hubctl-gallery"


def _image_name(run_id: str, k: int) -> str:
    return f"images/{run_id}-{k}.png"


def export_gallery(dest: str | Path, *, limit: int = 200) -> dict[str, Any]:
    """Write the newest ``limit`` runs whose images are still on disk (and unchanged) into ``dest``; return
    {"path", "runs", "images", "skipped"} (skipped: images missing or changed since they were recorded)."""
    from hubctl.run import records as runs
    from hubctl.serve.gallery import render_page, run_summary

    dest = Path(dest).absolute()
    if dest.exists() and (not dest.is_dir() or dest.is_symlink()):
        raise BadInput(f"{dest}: exists and is not a folder")
    if dest.is_dir() and any(dest.iterdir()) and not (dest / MARKER).is_file():
        raise BadInput(f"{dest}: not empty and not a hubctl gallery export (choose a new folder)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        (work / "images").mkdir()
        summaries, copied, skipped = [], 0, []
        for rec in runs.list_runs(limit):
            kept = []
            for k, im in enumerate(runs.images_of(rec)):
                src = Path(im.get("out_path") or "")
                try:
                    data = src.read_bytes()
                except OSError:
                    skipped.append(f"{rec.id} image {k}: {src} is gone")
                    continue
                if hashlib.sha256(data).hexdigest() != im.get("png_sha256"):
                    skipped.append(f"{rec.id} image {k}: {src} changed since it was recorded")
                    continue
                (work / _image_name(rec.id, k)).write_bytes(data)
                kept.append(k)
                copied += 1
            if not kept:
                continue
            s = run_summary(rec, lambda run_id, k: _image_name(run_id, k))
            s["images"] = [im for im in s["images"] if im["index"] in kept]
            summaries.append(s)
        (work / "index.html").write_text(render_page(mode="static", runs=summaries, title="hubctl gallery (export)"), "utf-8")
        (work / "runs.json").write_text(json.dumps(summaries, indent=1, sort_keys=True) + "\n", "utf-8")
        (work / MARKER).write_text("written by hubctl runs export; safe to replace\n", "utf-8")
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(work, 0o777 & ~mask)  # a folder the user owns: as mkdir would make it
        old = None
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            os.replace(dest, old)
        os.replace(work, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return {"path": str(dest), "runs": len(summaries), "images": copied, "skipped": skipped}
