"""Civitai's answers are untrusted, and its errors are real: hostile API answers end in one line with exit 3
(nothing written), a gated file names CIVITAI_TOKEN, a 404 is an unresolved reference (exit 1), a 429 waits
what its Retry-After says, the token never leaves the API's host, and bytes that do not match the API's SHA256 are
refused. The server is tests/servers/civitai_server.py, on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import time

import pytest

from tests.adopt._civitai import civitai  # noqa: F401 (fixture)


def _air_file(tmp_path, *lines: str):  # type: ignore[no-untyped-def]
    src = tmp_path / "airs.txt"
    src.write_text("\n".join(lines) + "\n")
    return src


def _lora(sparse) -> bytes:  # type: ignore[no-untyped-def]
    return sparse.get("sd1-lora-kohya").read_bytes()


HOSTILE = {
    "deep-json": ("[" * 1000 + "]" * 1000).encode(),
    "huge-answer": b'{"id": 1, "pad": "' + b"x" * (5 << 20) + b'"}',
    "not-json": b"<html>Cloudflare says hello</html>",
    "id-is-a-string": json.dumps({"id": "555", "modelId": 77, "name": "v", "files": []}).encode(),
    "files-not-a-list": json.dumps({"id": 555, "modelId": 77, "name": "v", "files": {"a": 1}}).encode(),
    "download-url-to-a-local-file": json.dumps({"id": 555, "modelId": 77, "name": "v", "baseModel": "SD 1.5",
                                                "model": {"name": "m", "type": "LORA"},
                                                "files": [{"id": 1, "name": "x.safetensors", "sizeKB": 1,
                                                           "downloadUrl": "file:///etc/passwd", "hashes": {}}]}).encode(),
    "size-out-of-range": json.dumps({"id": 555, "modelId": 77, "name": "v", "files": [
        {"id": 1, "name": "x", "sizeKB": 1e300, "downloadUrl": "https://civitai.com/x", "hashes": {}}]}).encode(),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_api_answer_is_one_line_exit_3_and_writes_nothing(case, cli, civitai, tmp_path):  # noqa: F811
    civitai.answers["/api/v1/model-versions/555"] = HOSTILE[case]
    out = tmp_path / "p"
    out.mkdir()
    r = cli("import", _air_file(tmp_path, "urn:air:sd1:lora:civitai:77@555"), "--dir", out)
    assert r.exit_code == 3, r.output
    assert "Traceback" not in r.output and len(r.stderr.strip().splitlines()) == 1
    assert "civitai" in r.stderr
    assert list(out.iterdir()) == []


def test_a_version_civitai_does_not_have_is_unresolved(cli, civitai, tmp_path):  # noqa: F811
    r = cli("import", _air_file(tmp_path, "urn:air:sd1:lora:civitai:77@999"), "--dir", tmp_path)
    assert r.exit_code == 1
    assert "Civitai has no model version 999" in r.stderr
    assert not (tmp_path / "hubctl.toml").exists()


def test_a_429_waits_for_its_retry_after_then_goes_on(cli, civitai, sparse, tmp_path, monkeypatch):  # noqa: F811
    civitai.add_version(555, model_id=77, model_name="Style", model_type="LORA", base_model="SD 1.5",
                        files=[(1, "style.safetensors", _lora(sparse))])
    civitai.rate_limit(1, retry_after=1)
    t0 = time.monotonic()
    r = cli("import", _air_file(tmp_path, "urn:air:sd1:lora:civitai:77@555"), "--dir", tmp_path)
    assert r.exit_code == 0, r.output
    assert time.monotonic() - t0 >= 1.0  # the backoff alone is 0.01 s here: the wait was the server's
    assert "429" in r.stderr and "retrying in 1 s" in r.stderr


def test_rate_limited_for_good_gives_up_with_exit_3(cli, civitai, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("HUBCTL_HTTP_RETRIES", "2")
    civitai.rate_limit(100, retry_after=0)
    r = cli("import", _air_file(tmp_path, "urn:air:sd1:lora:civitai:77@555"), "--dir", tmp_path)
    assert r.exit_code == 3 and "429" in r.stderr and "gave up" in r.stderr


def test_a_gated_file_names_civitai_token_and_a_wrong_token_says_so(cli, civitai, sparse, tmp_path, monkeypatch):  # noqa: F811
    civitai.add_version(555, model_id=77, model_name="Style", model_type="LORA", base_model="SD 1.5",
                        files=[(1, "style.safetensors", _lora(sparse))], gated=True)
    r = cli("import", _air_file(tmp_path, "urn:air:sd1:lora:civitai:77@555"), "--dir", tmp_path)
    assert r.exit_code == 3
    assert "401" in r.stderr and "set CIVITAI_TOKEN" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    monkeypatch.setenv("CIVITAI_TOKEN", "not-the-token")
    r = cli("import", _air_file(tmp_path, "urn:air:sd1:lora:civitai:77@555"), "--dir", tmp_path)
    assert r.exit_code == 3 and "CIVITAI_TOKEN was not accepted" in r.stderr
    assert "not-the-token" not in r.output
    assert not (tmp_path / "hubctl.toml").exists()


def test_the_token_is_never_sent_to_a_download_host_the_api_names(cli, civitai, sparse, tmp_path, monkeypatch):  # noqa: F811
    data = _lora(sparse)
    civitai.add_version(555, model_id=77, model_name="Style", model_type="LORA", base_model="SD 1.5",
                        files=[(1, "style.safetensors", data)])
    civitai.versions[555].files[0]["downloadUrl"] = civitai.cdn.url_for("/files/1/style.safetensors")  # another origin
    monkeypatch.setenv("CIVITAI_TOKEN", civitai.token)
    r = cli("import", _air_file(tmp_path, "urn:air:sd1:lora:civitai:77@555"), "--dir", tmp_path)
    assert r.exit_code == 0, r.output
    monkeypatch.chdir(tmp_path)
    assert cli("sync").exit_code == 0
    assert civitai.cdn.stats.requests and not any("authorization" in x.headers for x in civitai.cdn.stats.requests)


def test_bytes_that_do_not_match_the_apis_sha256_are_refused(cli, civitai, sparse, tmp_path, monkeypatch):  # noqa: F811
    data = _lora(sparse)
    civitai.add_version(555, model_id=77, model_name="Style", model_type="LORA", base_model="SD 1.5",
                        files=[(1, "style.safetensors", data)])
    assert cli("import", _air_file(tmp_path, "urn:air:sd1:lora:civitai:77@555"), "--dir", tmp_path).exit_code == 0
    civitai.cdn.add_file("/files/1/style.safetensors", data[:-1] + b"\x01")  # the CDN now serves other bytes
    monkeypatch.chdir(tmp_path)
    r = cli("sync")
    assert r.exit_code == 3 and "sha256 mismatch" in r.stderr
    from hubctl.store.blobs import Store

    assert not Store().has_blob(hashlib.sha256(data).hexdigest())


def test_a_base_model_hubctl_has_no_family_for_is_unresolved_not_guessed(cli, civitai, sparse, tmp_path):  # noqa: F811
    civitai.add_version(555, model_id=77, model_name="Style", model_type="LORA", base_model="Some Future Model",
                        files=[(1, "style.safetensors", _lora(sparse))])
    r = cli("import", _air_file(tmp_path, "urn:air:other:lora:civitai:77@555"), "--dir", tmp_path)
    assert r.exit_code == 1 and "base model 'Some Future Model' is no family hubctl knows" in r.stderr


def test_a_civitai_url_with_credentials_is_refused(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("HUBCTL_CIVITAI_URL", "https://user:secret@civitai.example")
    r = cli("import", _air_file(tmp_path, "urn:air:sd1:lora:civitai:77@555"), "--dir", tmp_path)
    assert r.exit_code == 2 and "secret" not in r.output and "HUBCTL_CIVITAI_URL" in r.stderr


def test_lookup_by_hash_finds_a_file_by_any_form_civitai_lists(civitai, sparse):  # noqa: F811
    from hubctl.sources.civitai import version_by_hash

    data = _lora(sparse)
    civitai.add_version(555, model_id=77, model_name="Style", model_type="LORA", base_model="SD 1.5",
                        files=[(1, "style.safetensors", data)])
    sha = hashlib.sha256(data).hexdigest()
    for h in (sha, sha[:10], civitai.versions[555].files[0]["hashes"]["BLAKE3"]):
        v = version_by_hash(h)
        assert v is not None and v.id == 555 and v.file_by_hash(h) is not None and v.file().sha256 == sha
    assert version_by_hash("0" * 64) is None
