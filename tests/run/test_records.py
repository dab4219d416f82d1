"""Run records in the state database, and `hubctl runs list|show` without torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hubctl.errors import BadInput
from hubctl.run.records import RunRecord, add_run, get_run, list_runs, new_run_id, record_to_dict


def _rec(run_id: str, created: str, **kw) -> RunRecord:
    return add_run(RunRecord(id=run_id, created=created, prompt="p", seed=1, steps=2, width=64, height=64, device="cpu",
                             dtype="fp32", base="demo-sd 1.4", image_sha256="ab" * 32,
                             params_json=json.dumps({"loras": {"demo-style": 0.5}}),
                             packages_json=json.dumps([{"name": "demo-sd", "version": "1.4", "kind": "checkpoint",
                                                        "family": "demo-sd1", "files": []}]), **kw))


def test_records_round_trip_and_list_newest_first():
    _rec("20260101-000000-aaaa", "2026-01-01T00:00:00Z")
    _rec("20260102-000000-bbbb", "2026-01-02T00:00:00Z", replay_of="20260101-000000-aaaa")
    assert [r.id for r in list_runs()] == ["20260102-000000-bbbb", "20260101-000000-aaaa"]
    d = record_to_dict(get_run("20260101-000000-aaaa"))
    assert d["params"] == {"loras": {"demo-style": 0.5}} and d["packages"][0]["name"] == "demo-sd"
    assert get_run("20260102").replay_of == "20260101-000000-aaaa"  # a unique prefix


def test_unknown_and_ambiguous_ids_are_bad_input():
    _rec("20260101-000000-aaaa", "2026-01-01T00:00:00Z")
    _rec("20260101-000000-aaab", "2026-01-01T00:00:00Z")
    with pytest.raises(BadInput, match="no run 'zzz'"):
        get_run("zzz")
    with pytest.raises(BadInput, match="ambiguous"):
        get_run("20260101-000000-aaa")


def test_new_run_ids_are_unique_and_sortable():
    ids = {new_run_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(len(i) == len("20260101-000000-abcd1234") for i in ids)


def test_runs_cli_lists_and_shows(cli):
    assert cli("runs", "list").stdout.startswith("no runs yet")
    _rec("20260101-000000-aaaa", "2026-01-01T00:00:00Z")
    r = cli("runs", "list", "--json")
    assert r.exit_code == 0 and [x["id"] for x in r.json()] == ["20260101-000000-aaaa"]
    s = cli("runs", "show", "20260101-000000-aaaa", "--json").json()
    assert s["base"] == "demo-sd 1.4" and s["params"]["loras"] == {"demo-style": 0.5}
    assert cli("runs", "show", "nope").exit_code == 2


def test_runs_list_never_imports_torch(hubctl_home):
    code = ("import sys; from hubctl.cli.app import main; sys.argv=['hubctl','runs','list','--json']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "bad=[m for m in ('torch','diffusers','transformers','peft') if m in sys.modules]\n"
            "assert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == []
