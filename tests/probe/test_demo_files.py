"""The demo hub's files (tiny real diffusers models of the demo families, declared in the demo registry):
they classify exactly like real ones, and `hubctl check` refuses the cross-family pairs by name."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def _inspect(cli, path):
    r = cli("inspect", path, "--json")
    assert r.exit_code == 0, r.output
    return r.json()


def test_demo_bases_classify_by_the_registry_families(cli, demo_registry) -> None:
    h = demo_registry
    d14 = _inspect(cli, h.folder("demo-sd", "1.4", "fp32"))
    single = _inspect(cli, h.file("demo-sd", "1.4", "single-file"))
    d20 = _inspect(cli, h.folder("demo-sd", "2.0", "fp32"))
    assert (d14["kind"], d14["family"], d14["layout"], d14["prediction"]) == ("checkpoint", "demo-sd1", "diffusers", "epsilon")
    assert (single["kind"], single["family"], single["layout"]) == ("checkpoint", "demo-sd1", "ldm")
    assert (d20["kind"], d20["family"], d20["prediction"]) == ("checkpoint", "demo-sd2", "v_prediction")


def test_demo_adapters_classify(cli, demo_registry) -> None:
    h = demo_registry
    s1 = _inspect(cli, h.file("demo-style", "1.0", "fp32"))
    s2 = _inspect(cli, h.file("demo-style", "2.0", "fp32"))
    tok = _inspect(cli, h.file("demo-token", "1.0", "fp32"))
    canny = _inspect(cli, h.folder("demo-canny", "1.0", "fp32"))
    assert (s1["kind"], s1["family"], s1["layout"], s1["rank"]) == ("lora", "demo-sd1", "kohya", 4)
    assert (s2["kind"], s2["family"], s2["layout"]) == ("lora", "demo-sd2", "diffusers")
    assert (tok["kind"], tok["family"], tok["tokens"], tok["vectors"]) == ("embedding", "demo-sd1", ["<demo-token>"], 2)
    assert (canny["kind"], canny["family"]) == ("controlnet", "demo-sd1")


def test_demo_set_fits_and_cross_family_lora_is_refused(cli, demo_registry) -> None:
    h = demo_registry
    ok = cli("check", h.file("demo-sd", "1.4", "single-file"), h.file("demo-style", "1.0", "fp32"),
             h.file("demo-token", "1.0", "fp32"), h.folder("demo-canny", "1.0", "fp32"), "--json")
    assert ok.exit_code == 0, ok.output
    bad = cli("check", h.folder("demo-sd", "2.0", "fp32"), h.file("demo-style", "1.0", "fp32"), "--json")
    assert bad.exit_code == 1
    (p,) = bad.json()["problems"]
    assert "is a demo-sd1 LoRA (cross-attention 32); " in p["reason"] and "is demo-sd2 (64)" in p["reason"]


def test_demo_packages_by_name_both_levels(cli, demo_registry) -> None:
    bad = cli("check", "demo-sd==2.0", "demo-style==1.0", "--json")
    assert bad.exit_code == 1, bad.output
    reasons = [p["reason"] for p in bad.json()["problems"]]
    assert "demo-style 1.0 is declared for demo-sd1; demo-sd 2.0 is demo-sd2" in reasons
    assert any(r.startswith("demo-style 1.0 requires demo-sd") for r in reasons)
    assert any("demo-style 1.0 is a demo-sd1 LoRA (cross-attention 32); demo-sd 2.0 is demo-sd2 (64)" in r for r in reasons)
    ok = cli("check", "demo-sd==1.4", "demo-style==1.0", "demo-token", "demo-canny", "--json")
    assert ok.exit_code == 0, ok.output
    assert all(c["levels"]["declared"] == "ok" for c in ok.json()["checked"])
