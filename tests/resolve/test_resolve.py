"""Resolution (issue 5 item 2 and the demo walk of item 6), on in-memory indexes of real Manifest values."""

from __future__ import annotations

import pytest

from hubctl.errors import BadInput, Refused
from hubctl.resolve import MemoryIndex, resolve
from tests._hubs import GiB, demo_index, manifest, real_like_index, variant, version


def picked(res) -> dict[str, str]:
    return {p.name: p.version for p in res.picks}


# ------------------------------------------------------------------ the demo walk (issue 5 item 6)


def test_demo_sd1_base_with_demo_style_picks_style_1_0():
    res = resolve(["demo-sd<2", "demo-style"], demo_index())
    assert picked(res) == {"demo-sd": "1.4", "demo-style": "1.0"}
    assert res.family == "demo-sd1"


def test_demo_sd2_base_with_demo_style_picks_style_2_0():
    res = resolve(["demo-sd>=2", "demo-style"], demo_index())
    assert picked(res) == {"demo-sd": "2.0", "demo-style": "2.0"}
    assert res.family == "demo-sd2"


def test_demo_sd1_base_with_style_2_is_refused_with_the_chain():
    with pytest.raises(Refused) as e:
        resolve(["demo-sd<2", "demo-style>=2"], demo_index())
    assert str(e.value) == "demo-style>=2 needs family demo-sd2; you asked for demo-sd<2 (demo-sd1)"
    assert e.value.exit_code == 1


def test_demo_sd_alone_never_picks_the_pre_release_without_pre():
    assert picked(resolve(["demo-sd"], demo_index())) == {"demo-sd": "2.0"}
    assert picked(resolve(["demo-sd>=2"], demo_index())) == {"demo-sd": "2.0"}
    assert picked(resolve(["demo-sd"], demo_index(), pre=True)) == {"demo-sd": "2.1b1"}


def test_a_requirement_that_names_a_pre_release_allows_it():
    assert picked(resolve(["demo-sd>=2.1b1"], demo_index())) == {"demo-sd": "2.1b1"}
    assert picked(resolve(["demo-sd==2.1b1", "demo-style"], demo_index())) == {"demo-sd": "2.1b1", "demo-style": "2.0"}


def test_only_a_pre_release_matching_says_so_and_how_to_allow_it():
    with pytest.raises(Refused, match=r"no version of demo-sd matches >2.0 .*2\.1b1 is a pre-release \(allow with --pre"):
        resolve(["demo-sd>2.0"], demo_index())


def test_adapters_alone_agree_on_one_family():
    res = resolve(["demo-style", "demo-token"], demo_index())
    assert picked(res) == {"demo-style": "1.0", "demo-token": "1.0"}  # demo-token exists only for demo-sd1
    with pytest.raises(Refused, match="demo-style>=2 needs family demo-sd2; demo-token needs family demo-sd1"):
        resolve(["demo-style>=2", "demo-token"], demo_index())


def test_picks_come_bases_first_then_adapters_by_kind_and_name():
    res = resolve(["demo-canny", "demo-token", "demo-style", "demo-sd<2"], demo_index())
    assert [p.name for p in res.picks] == ["demo-sd", "demo-style", "demo-token", "demo-canny"]
    assert [p.kind for p in res.picks] == ["checkpoint", "lora", "embedding", "controlnet"]
    assert all(p.requested for p in res.picks)
    assert res.picks[0].manifest.name == "demo-sd" and res.picks[0].version_info.version == "1.4"


# ------------------------------------------------------------------ requires, backtracking, yanked, pins


def test_adapter_requires_pulls_the_base_down_to_its_range():
    res = resolve(["stable-diffusion", "arcane-style"], real_like_index())
    assert picked(res) == {"stable-diffusion": "1.5", "arcane-style": "1.0"}


def test_adapter_requires_brings_in_a_base_not_asked_for():
    res = resolve(["arcane-style"], real_like_index())
    assert picked(res) == {"stable-diffusion": "1.5", "arcane-style": "1.0"}
    assert res.get("stable-diffusion").requested is False and res.get("arcane-style").requested is True


def test_backtracks_when_the_newest_adapter_moved_to_another_base():
    res = resolve(["stable-diffusion==1.5", "moving-style"], real_like_index())
    assert picked(res) == {"stable-diffusion": "1.5", "moving-style": "1.1"}
    res = resolve(["stable-diffusion<2", "moving-style", "canny"], real_like_index())
    assert picked(res)["moving-style"] == "1.1"


def test_conflicting_requires_names_both_sides():
    with pytest.raises(Refused) as e:
        resolve(["stable-diffusion>=1.5,<2", "old-style"], real_like_index())
    msg = str(e.value)
    assert "you asked for stable-diffusion<2,>=1.5" in msg
    assert "old-style 1.0 requires stable-diffusion<1.5" in msg


def test_adapter_requiring_sd1_with_an_sd2_base_is_refused_in_plain_words():
    with pytest.raises(Refused, match=r"arcane-style needs family sd1; you asked for stable-diffusion>=2 \(sd2\)"):
        resolve(["stable-diffusion>=2", "arcane-style"], real_like_index())


def test_a_dependency_on_an_unknown_package_refuses_instead_of_crashing():
    with pytest.raises(Refused, match="broken-dep 1.0 requires does-not-exist, which no configured registry has"):
        resolve(["broken-dep"], real_like_index())


def test_yanked_versions_are_skipped_unless_pinned_exactly():
    assert picked(resolve(["canny"], real_like_index()))["canny"] == "1.1"
    assert picked(resolve(["canny>=1.1"], real_like_index()))["canny"] == "1.1"
    assert picked(resolve(["canny==1.2"], real_like_index()))["canny"] == "1.2"
    with pytest.raises(Refused, match=r"1\.2 is yanked \(pin it with canny==1\.2 to use it anyway\)"):
        resolve(["canny>1.1"], real_like_index())


def test_locked_and_installed_pins_are_kept_while_they_fit():
    idx = real_like_index()
    assert picked(resolve(["stable-diffusion"], idx, locked={"stable-diffusion": "1.4"})) == {"stable-diffusion": "1.4"}
    assert picked(resolve(["stable-diffusion"], idx, installed={"stable-diffusion": "2.0"})) == {"stable-diffusion": "2.0"}
    # a pin the requirements no longer allow is dropped, not forced
    assert picked(resolve(["stable-diffusion>=2"], idx, locked={"stable-diffusion": "1.4"})) == {"stable-diffusion": "2.1"}
    # the locked pin wins over installed
    res = resolve(["stable-diffusion"], idx, installed={"stable-diffusion": "2.0"}, locked={"stable-diffusion": "1.5"})
    assert picked(res) == {"stable-diffusion": "1.5"}


def test_a_locked_base_is_kept_and_adapters_follow_it():
    res = resolve(["stable-diffusion", "moving-style"], real_like_index(), locked={"stable-diffusion": "1.4"})
    assert picked(res) == {"stable-diffusion": "1.4", "moving-style": "1.1"}


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("req", ["demo sd", "demo-sd>>2", "demo-sd[extra]", "demo-sd @ https://x.org/a", "demo-sd; python_version>'3'", ""])
def test_a_requirement_that_does_not_parse_is_bad_input(req):
    with pytest.raises(BadInput) as e:
        resolve([req], demo_index())
    assert e.value.exit_code == 2
    assert "\n" not in str(e.value)


def test_an_unknown_package_is_refused_naming_it_with_close_names():
    with pytest.raises(Refused, match="no package named 'no-such-model' in the index") as e:
        resolve(["demo-sd", "No_Such.Model>=1"], demo_index())
    assert e.value.exit_code == 1
    with pytest.raises(Refused, match=r"did you mean: demo-style, "):
        resolve(["demo_stlye"], demo_index())


def test_no_version_matching_lists_what_exists():
    with pytest.raises(Refused, match=r"no version of demo-sd matches <1 \(versions: 2\.1b1, 2\.0, 1\.4\)"):
        resolve(["demo-sd<1"], demo_index())


# ------------------------------------------------------------------ variants: dtype and VRAM


def _variants_index():
    return MemoryIndex(
        [
            manifest(
                "big-base",
                "checkpoint",
                [version("1.0", "sd1", variants=[variant("fp32", "fp32", 9 * GiB), variant("fp16", "fp16", int(4.5 * GiB)), variant("bf16", "bf16", int(4.5 * GiB))])],
            ),
            manifest("lora-a", "lora", [version("1.0", "sd1", variants=[variant("fp32", "fp32", GiB // 4), variant("fp16", "fp16", GiB // 8)])]),
        ]
    )


def test_variant_follows_the_dtype_preference():
    idx = _variants_index()
    assert resolve(["big-base"], idx).get("big-base").variant == "fp32"  # manifest order when no preference
    assert resolve(["big-base"], idx, dtype="bf16").get("big-base").variant == "bf16"
    assert resolve(["big-base", "lora-a"], idx, dtype="fp16").get("lora-a").variant == "fp16"


def test_fp16_is_chosen_when_fp32_would_not_fit_in_10gib():
    res = resolve(["big-base", "lora-a"], _variants_index(), dtype="fp32", vram="10GiB")
    assert res.get("big-base").variant == "fp16"  # 9 GiB x 1.2 overhead does not fit; the big saving is the base
    assert res.get("lora-a").variant == "fp32"  # the small adapter keeps its preferred dtype
    assert res.vram_estimate <= 10 * GiB
    res = resolve(["big-base"], _variants_index(), dtype="fp32", vram="16GiB")
    assert res.get("big-base").variant == "fp32"


def test_a_budget_nothing_fits_is_refused_with_the_sizes():
    with pytest.raises(Refused, match=r"the smallest variants need about 5\.5 GiB of VRAM .*the budget is 4\.0 GiB"):
        resolve(["big-base", "lora-a"], _variants_index(), vram="4GiB")


def test_locked_variant_is_kept():
    res = resolve(["big-base"], _variants_index(), locked={"big-base": "1.0"}, locked_variants={"big-base": "bf16"})
    assert res.get("big-base").variant == "bf16"


@pytest.mark.parametrize(
    "text,expected",
    [("10GiB", 10 * GiB), ("10 GiB", 10 * GiB), ("10G", 10 * GiB), ("12GB", 12 * 10**9), ("8000MiB", 8000 * 1024**2), (1024, 1024), ("1.5GiB", int(1.5 * GiB))],
)
def test_vram_strings_parse(text, expected):
    from hubctl.resolve import parse_vram

    assert parse_vram(text) == expected


@pytest.mark.parametrize("text", ["ten gigs", "10 parsecs", "-1GiB", "0", True])
def test_a_bad_vram_string_is_bad_input(text):
    from hubctl.resolve import parse_vram

    with pytest.raises(BadInput, match="vram: "):
        parse_vram(text)


def test_a_family_restriction_picks_the_newest_of_that_family():
    res = resolve(["demo-sd", "demo-style"], demo_index(), family="demo-sd1")
    assert picked(res) == {"demo-sd": "1.4", "demo-style": "1.0"}
    assert res.family == "demo-sd1"
    with pytest.raises(Refused, match=r"demo-style>=2 has no version of family demo-sd1 \(it has: demo-sd2\)"):
        resolve(["demo-style>=2"], demo_index(), family="demo-sd1")
    with pytest.raises(Refused, match=r"demo-canny has no version of family demo-sd2 \(it has: demo-sd1\)"):
        resolve(["demo-sd", "demo-canny"], demo_index(), family="demo-sd2")


def test_safetensors_variants_are_preferred_over_pickled_ones():
    idx = MemoryIndex(
        [
            manifest(
                "old-base",
                "checkpoint",
                [version("1.0", "sd1", variants=[variant("ckpt-fp32", "fp32", GiB, path="model.ckpt"), variant("fp32", "fp32", GiB)])],
            )
        ]
    )
    assert resolve(["old-base"], idx).get("old-base").variant == "fp32"
    # a locked choice is still kept
    assert resolve(["old-base"], idx, locked_variants={"old-base": "ckpt-fp32"}).get("old-base").variant == "ckpt-fp32"
