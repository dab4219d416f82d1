"""Pruning and search agree with brute force: on random small indexes (hypothesis), resolve() finds a set
exactly when one exists, and the set it finds satisfies every rule; plus the plain-words reasons for the
conflicts pruning proves."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubctl.errors import Refused
from hubctl.resolve import MemoryIndex, resolve
from tests._hubs import manifest, version

NAMES = ["pa", "pb", "pc", "pd"]


@st.composite
def small_hub(draw):
    specs = []
    for name in NAMES:
        vers = []
        for minor in range(draw(st.integers(1, 4))):
            requires = []
            for other in NAMES:
                if other != name and draw(st.integers(0, 5)) == 0:
                    op = draw(st.sampled_from(["==", ">=", "<", "!="]))
                    requires.append(f"{other}{op}1.{draw(st.integers(0, 3))}")
            vers.append((f"1.{minor}", draw(st.sampled_from(["fa", "fb"])), requires))
        specs.append((name, vers))
    asked = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True))
    asked = [n + draw(st.sampled_from(["", ">=1.1", "<1.2", "!=1.0"])) for n in asked]
    return specs, asked


def _valid(choice: dict[str, tuple[str, str, list[str]]], asked: list[str]) -> bool:
    from packaging.requirements import Requirement

    if len({fam for _, fam, _ in choice.values()}) > 1:
        return False
    for text in asked:
        r = Requirement(text)
        if r.name not in choice or not r.specifier.contains(choice[r.name][0], prereleases=True):
            return False
    for _, _, reqs in choice.values():
        for text in reqs:
            r = Requirement(text)
            if r.name not in choice or not r.specifier.contains(choice[r.name][0], prereleases=True):
                return False
    return True


def _brute_force(specs, asked) -> bool:
    options = [[None, *vers] for _, vers in specs]
    for combo in itertools.product(*options):
        choice = {name: v for (name, _), v in zip(specs, combo) if v is not None}
        if _valid(choice, asked):
            return True
    return False


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_hub())
def test_resolve_finds_a_set_exactly_when_one_exists(hub):
    specs, asked = hub
    idx = MemoryIndex([manifest(name, "lora", [version(v, fam, requires=reqs) for v, fam, reqs in vers]) for name, vers in specs])
    exists = _brute_force(specs, asked)
    try:
        res = resolve(asked, idx)
    except Refused as e:
        assert not exists, f"refused ({e}) although a set exists for {asked}"
        assert "\n" not in str(e) and str(e)
        return
    assert exists
    by_name = {name: {v: (v, fam, reqs) for v, fam, reqs in vers} for name, vers in specs}
    choice = {p.name: by_name[p.name][p.version] for p in res.picks}
    assert _valid(choice, asked), f"{asked} -> {[(p.name, p.version) for p in res.picks]} breaks a rule"


def _pingpong(n: int) -> MemoryIndex:
    return MemoryIndex(
        [
            manifest("ping", "lora", [version(f"1.{k}", "sd1", requires=[f"pong==1.{k}"]) for k in range(n)]),
            manifest("pong", "embedding", [version(f"1.{k}", "sd1", requires=[f"ping!=1.{k}"]) for k in range(n)]),
        ]
    )


def test_a_cycle_no_version_survives_is_proved_and_named():
    with pytest.raises(Refused, match=r"^no version of ping fits with the rest: ping 1\.4 fails: .*ping 1\.4 requires pong==1\.4"):
        resolve(["ping"], _pingpong(5))


def test_opposite_needs_on_a_shared_dependency_are_named_with_both_sides():
    idx = MemoryIndex(
        [
            manifest("helper", "embedding", [version(f"{m}.0", "sd1") for m in (1, 2)]),
            manifest("left", "lora", [version(f"1.{k}", "sd1", requires=["helper<2"]) for k in range(5)]),
            manifest("right", "lora", [version(f"1.{k}", "sd1", requires=["helper>=2"]) for k in range(5)]),
        ]
    )
    with pytest.raises(Refused) as e:
        resolve(["left", "right"], idx)
    msg = str(e.value)
    assert "every allowed version of left (5) requires helper<2" in msg
    assert "every allowed version of right (5) requires helper>=2" in msg
