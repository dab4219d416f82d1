"""Run records: what a verified inference run used and produced, in the state database.

Owns the ``run`` table (lock digest, the locked packages, every file hash, library versions, device, dtype,
attention backend, parameters, seed, output path and image hashes) and reading/writing it. A batch's record
(hubctl.run.batch) describes image 0 in its columns and every image in ``params["images"]`` (prompt, negative,
seed, out_path, image_sha256, png_sha256); :func:`images_of` gives that list for any record. Must not import
torch or diffusers: ``hubctl runs list`` stays fast.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timezone
from typing import Any, Optional

from sqlmodel import Field, Session, SQLModel, select

from hubctl.errors import BadInput

__all__ = ["RunRecord", "now_created", "new_run_id", "add_run", "get_run", "list_runs", "record_to_dict", "images_of"]


class RunRecord(SQLModel, table=True):
    __tablename__ = "run"

    id: str = Field(primary_key=True)
    created: str = Field(index=True)
    status: str = "ok"
    prompt: str = ""
    negative: str = ""
    seed: int = 0
    steps: int = 0
    guidance: float = 0.0
    width: int = 0
    height: int = 0
    sampler: str = ""
    base: str = ""  # "name version"
    model_hash: str = ""
    lock_digest: str = ""
    lock_path: str = ""
    device: str = ""
    dtype: str = ""
    attention: str = ""
    out_path: str = ""
    image_sha256: str = ""  # over the pixels: what replays compare
    png_sha256: str = ""  # over the PNG file
    replay_of: Optional[str] = None
    seconds: float = 0.0
    params_json: str = "{}"  # everything needed to run it again (loras, controlnet, control image hash, ...)
    packages_json: str = "[]"  # the locked packages with their files (so a replay needs no lock file)
    versions_json: str = "{}"  # library versions


def now_created() -> str:
    """The ``created`` stamp of a new run: UTC to the microsecond, so runs made within one second keep their
    order (``runs list`` sorts by it, newest first)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_run_id() -> str:
    """A short, sortable id: UTC time to the second plus 8 random hex digits."""
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(4)


def _engine():  # type: ignore[no-untyped-def]
    """The state engine with the run table made (hubctl.db.ensure_tables: once per engine, safe to race)."""
    from hubctl.db import ensure_tables, state_engine

    eng = state_engine()
    ensure_tables(eng, [RunRecord])
    return eng


def add_run(rec: RunRecord) -> RunRecord:
    with Session(_engine()) as s:
        s.add(rec)
        s.commit()
        s.refresh(rec)
    return rec


def get_run(run_id: str) -> RunRecord:
    """The run with this id, or the only one whose id starts with it; BadInput when none or several."""
    with Session(_engine()) as s:
        rec = s.get(RunRecord, run_id)
        if rec is not None:
            return rec
        matches = list(s.exec(select(RunRecord).where(RunRecord.id.startswith(run_id))).all()) if run_id else []  # type: ignore[attr-defined]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise BadInput(f"no run {run_id!r} (see `hubctl runs list`)")
    raise BadInput(f"run id {run_id!r} is ambiguous: {', '.join(m.id for m in matches[:5])}")


def list_runs(limit: int = 50, *, out_under: str | None = None) -> list[RunRecord]:
    """The newest runs first; ``out_under``: only those whose image was written under that folder."""
    with Session(_engine()) as s:
        q = select(RunRecord)
        if out_under is not None:
            q = q.where(RunRecord.out_path.startswith(out_under.rstrip("/") + "/", autoescape=True))  # type: ignore[attr-defined]
        return list(s.exec(q.order_by(RunRecord.created.desc(), RunRecord.id.desc()).limit(limit)).all())  # type: ignore[attr-defined]


def record_to_dict(rec: RunRecord, *, full: bool = True) -> dict[str, Any]:
    d = rec.model_dump()
    for k in ("params_json", "packages_json", "versions_json"):
        raw = d.pop(k)
        if full:
            d[k[: -len("_json")]] = json.loads(raw)
    return d


def images_of(rec: RunRecord) -> list[dict[str, Any]]:
    """Every image of a run: one entry (prompt, negative, seed, out_path, image_sha256, png_sha256) per image."""
    params = json.loads(rec.params_json or "{}")
    images = params.get("images")
    if isinstance(images, list) and images:
        return [dict(im) for im in images]
    return [{"prompt": rec.prompt, "negative": rec.negative, "seed": rec.seed, "out_path": rec.out_path,
             "image_sha256": rec.image_sha256, "png_sha256": rec.png_sha256}]
