"""One resolver policy everywhere (pip's): a pre-release of X is allowed when any requirement on X anywhere in
the graph names one; a yanked version only when an exact ``==``/``===`` pin leaves nothing else (PEP 592,
as pip does); pruning never cuts what the search alone would pick; the same words whatever the hash seed;
dependency cycles resolve. Checked against a brute-force solver on random small indexes."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packaging.requirements import Requirement
from packaging.version import Version

from hubctl.errors import Refused
from hubctl.resolve import MemoryIndex, resolve
from tests._hubs import demo_index, manifest, project_dir, version  # noqa: F401 (fixture)


def picked(res) -> dict[str, str]:
    return {p.name: p.version for p in res.picks}


# ------------------------------------------------------------------ pre-releases named in the graph (issue 10 item 7)


def _named_by_a_dependency() -> MemoryIndex:
    return MemoryIndex(
        [
            manifest("base", "checkpoint", [version("1.0", "sd1"), version("1.5", "sd1"), version("2.0b1", "sd1")]),
            manifest("b", "lora", [version("1.0", "sd1", requires=["base==2.0b1"])]),
            manifest("c", "embedding", [version("1.0", "sd1", requires=["b"])]),
        ]
    )


@pytest.mark.parametrize("asked", [["b"], ["base", "b"], ["base>=1.5", "b"], ["base", "c"], ["c", "base>=1"]])
def test_a_pre_release_a_dependency_names_is_allowed_beside_a_plain_requirement(asked):
    assert picked(resolve(asked, _named_by_a_dependency()))["base"] == "2.0b1"


def test_a_plain_requirement_alone_still_skips_the_pre_release():
    assert picked(resolve(["base"], _named_by_a_dependency())) == {"base": "1.5"}


# ------------------------------------------------------------------ yanked versions, PEP 592 as pip (issue 10 item 19)


def test_equals_without_a_local_label_pins_a_yanked_local_version():
    idx = MemoryIndex([manifest("x", "lora", [version("1.0", "sd1"), version("1.1+cpu", "sd1", yanked=True)])])
    assert picked(resolve(["x==1.1"], idx)) == {"x": "1.1+cpu"}
    assert picked(resolve(["x"], idx)) == {"x": "1.0"}


def test_a_yanked_version_is_skipped_when_the_pin_also_matches_one_not_yanked():
    idx = MemoryIndex([manifest("x", "lora", [version("1.1", "sd1"), version("1.1+cpu", "sd1", yanked=True)])])
    assert picked(resolve(["x==1.1"], idx)) == {"x": "1.1"}


def test_the_yanked_hint_names_the_pin_that_would_select_it():
    idx = MemoryIndex([manifest("x", "lora", [version("1.0", "sd1"), version("1.1+cpu", "sd1", yanked=True)])])
    with pytest.raises(Refused, match=r"1\.1\+cpu is yanked \(pin it with x==1\.1\+cpu to use it anyway\)"):
        resolve(["x>1.0"], idx)


# ------------------------------------------------------------------ --family is the family slot, not != specifiers


def test_install_family_restriction_is_named_in_the_users_words(hubctl_home):
    from hubctl.lock.workflow import install

    with pytest.raises(Refused) as e:
        install(["demo-style", "demo-sd>=2"], family="demo-sd1", index=demo_index(), progress=False)
    assert str(e.value) == "demo-sd>=2 has no version of family demo-sd1 (it has: demo-sd2)"


# ------------------------------------------------------------------ check picks versions by the same policy


def test_check_picks_a_yanked_version_pinned_exactly_as_the_resolver_does(project_dir):
    import tomli_w

    from hubctl.compat.gather import resolve_argument
    from hubctl.registry.manage import open_index
    from hubctl.tomlcompat import tomllib

    f = project_dir.parent / "hub" / "registry" / "manifests" / "embedding" / "demo-token.toml"
    data = tomllib.loads(f.read_text())
    data["versions"].append({**data["versions"][0], "version": "1.1", "yanked": True})
    f.write_text(tomli_w.dumps(data))
    idx = open_index()
    fams = idx.families
    for arg in ("demo-token==1.1", "demo-token"):
        want = picked(resolve([arg], idx))["demo-token"]
        _, _, declared = resolve_argument(arg, fams, role="adapter", warnings=[], offline=True)
        assert declared.version == want, arg


# ------------------------------------------------------------------ same words whatever the hash seed (item 17)


def test_no_set_messages_do_not_depend_on_the_hash_seed():
    code = (
        "from hubctl.resolve import MemoryIndex, resolve\n"
        "from tests._hubs import manifest, version\n"
        "idx = MemoryIndex([manifest('a', 'lora', [version('1.0', 'sd1', requires=[f'{n}>=5' for n in 'bcdefg'])])]"
        " + [manifest(n, 'embedding', [version('1.0', 'sd1')]) for n in 'bcdefg'])\n"
        "try:\n    resolve(['a'], idx)\nexcept Exception as e:\n    print(e)\n"
    )
    root = Path(__file__).resolve().parents[2]
    seen = set()
    for seed in range(6):
        env = {**os.environ, "PYTHONHASHSEED": str(seed), "PYTHONPATH": str(root)}
        out = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True, check=True)
        seen.add(out.stdout.strip())
    assert len(seen) == 1, seen


# ------------------------------------------------------------------ cycles


def test_a_dependency_cycle_left_behind_by_backtracking_resolves():
    """b 1.1 -> a -> c -> a (a cycle), and c 1.2 refuses b 1.1: the search backs off to b 1.0 and must
    return it (resolvelib's result builder recursed forever on the abandoned cycle)."""
    idx = MemoryIndex(
        [
            manifest("pa", "lora", [version("1.0", "fb", requires=["pc>=1.2"])]),
            manifest("pb", "lora", [version("1.0", "fb"), version("1.1", "fb", requires=["pa<1.2"]), version("1.2", "fa", requires=["pd>=1.2"])]),
            manifest("pc", "lora", [version("1.0", "fb"), version("1.1", "fb", requires=["pd>=1.0"]), version("1.2", "fb", requires=["pa>=1.0", "pb<1.1"])]),
            manifest("pd", "lora", [version("1.0", "fa", requires=["pc==1.0"]), version("1.1", "fa"), version("1.2", "fb"), version("1.3", "fb")]),
        ]
    )
    assert picked(resolve(["pb"], idx)) == {"pb": "1.0"}


def test_a_plain_two_package_cycle_resolves():
    idx = MemoryIndex(
        [
            manifest("ping", "lora", [version("1.0", "sd1", requires=["pong"])]),
            manifest("pong", "embedding", [version("1.0", "sd1", requires=["ping"])]),
        ]
    )
    assert picked(resolve(["ping"], idx)) == {"ping": "1.0", "pong": "1.0"}


# ------------------------------------------------------------------ the property: resolve() == brute force


NAMES = ["pa", "pb", "pc", "pd"]
VERSIONS = ["1.0", "1.1", "1.2b1", "1.2", "1.3rc1"]


@st.composite
def hub_with_pre_and_yanked(draw):
    specs = []
    for name in NAMES:
        vers = []
        chosen = draw(st.lists(st.sampled_from(VERSIONS), min_size=1, max_size=4, unique=True))
        for v in sorted(chosen, key=Version):
            requires = []
            for other in NAMES:
                if other != name and draw(st.integers(0, 4)) == 0:
                    op = draw(st.sampled_from(["==", ">=", "<", "!=", ""]))
                    requires.append(other if not op else f"{other}{op}{draw(st.sampled_from(VERSIONS))}")
            vers.append((v, draw(st.sampled_from(["fa", "fa", "fb"])), requires, draw(st.integers(0, 5)) == 0))
        specs.append((name, vers))
    asked = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True))
    asked = [n + draw(st.sampled_from(["", ">=1.1", "<1.2", "!=1.0", "==1.2b1", ">=1.2b1", "==1.1"])) for n in asked]
    return specs, asked, draw(st.booleans())


def _names_pre(text: str) -> bool:
    """pip's test for a specifier that names a pre-release (independent of hubctl's code)."""
    return any(s.operator != "!=" and Version(s.version.rstrip(".*")).is_prerelease for s in Requirement(text).specifier)


def _pins(text: str) -> bool:
    return any(s.operator in ("==", "===") and not s.version.endswith(".*") for s in Requirement(text).specifier)


def _policy_ok(choice, asked, pre, versions_of, *, grounded: bool = False) -> bool:
    """Every rule on a complete choice {name: (version, family, requires, yanked)}. ``grounded``: a
    pre-release or yanked version must be allowed by the user's own requirements on it (a stricter rule:
    every set valid under it is one the search finds whatever order it pins in)."""
    if len({fam for _, fam, _, _ in choice.values()}) > 1:
        return False
    reached, todo = set(), [Requirement(t).name for t in asked]
    while todo:  # only what the requirements reach is in a set (nothing rides along to allow a pre-release)
        n = todo.pop()
        if n in reached or n not in choice:
            continue
        reached.add(n)
        todo += [Requirement(t).name for t in choice[n][2]]
    if reached != set(choice):
        return False
    reqs = list(asked) + [r for _, _, rs, _ in choice.values() for r in rs]
    on: dict[str, list[str]] = {}
    for text in reqs:
        r = Requirement(text)
        if r.name not in choice or not r.specifier.contains(choice[r.name][0], prereleases=True):
            return False
        on.setdefault(r.name, []).append(text)
    for name, (v, _, _, yanked) in choice.items():
        texts = [t for t in asked if Requirement(t).name == name] if grounded else on.get(name, [])
        allow_pre = pre or any(_names_pre(t) for t in texts)
        if Version(v).is_prerelease and not allow_pre:
            return False
        if yanked:
            matching = [
                (w, y) for w, _, _, y in versions_of[name]
                if all(Requirement(t).specifier.contains(w, prereleases=True) for t in texts) and (allow_pre or not Version(w).is_prerelease)
            ]
            if not (any(_pins(t) for t in texts) and all(y for _, y in matching)):
                return False
    return True


def _brute_force(specs, asked, pre, *, grounded: bool = False) -> bool:
    versions_of = {name: vers for name, vers in specs}
    options = [[None, *vers] for _, vers in specs]
    for combo in itertools.product(*options):
        choice = {name: v for (name, _), v in zip(specs, combo) if v is not None}
        if _policy_ok(choice, asked, pre, versions_of, grounded=grounded):
            return True
    return False


def _alone(idx, asked, pre):
    """What resolvelib alone picks with the provider (no pruning), or None when it finds no set."""
    from resolvelib.resolvers import ResolutionImpossible, ResolutionTooDeep

    from hubctl.resolve import parse_requirement
    from hubctl.resolve.candidates import PackageCandidate
    from hubctl.resolve.provider import Provider
    from hubctl.resolve.search import search

    try:
        mapping = search(Provider(idx, pre=pre), [parse_requirement(a) for a in asked], max_rounds=2000)
    except (ResolutionImpossible, ResolutionTooDeep):
        return None
    return {c.name: c.release.version for c in mapping.values() if isinstance(c, PackageCandidate)}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hub_with_pre_and_yanked())
def test_resolve_agrees_with_brute_force_and_resolvelib_alone_under_the_pre_release_and_yank_rules(hub):
    """Sound: every set resolve() returns keeps every rule (brute-force check). The same as resolvelib alone
    whenever that is sound (pruning changes no answer). Complete: whenever a set exists whose pre-releases and yanked versions the
    user's own requirements allow, resolve() finds one (the dynamic rules make no stronger promise, in pip
    either: a pre-release only a not-yet-chosen dependency names is found when the search reaches it)."""
    specs, asked, pre = hub
    idx = MemoryIndex(
        [manifest(name, "lora", [version(v, fam, requires=reqs, yanked=y) for v, fam, reqs, y in vers]) for name, vers in specs]
    )
    versions_of = {n: v for n, v in specs}
    by_name = {name: {v: (v, fam, reqs, y) for v, fam, reqs, y in vers} for name, vers in specs}
    alone = _alone(idx, asked, pre)
    if alone is not None and not _policy_ok({n: by_name[n][v] for n, v in alone.items()}, asked, pre, versions_of):
        alone = None  # resolvelib alone kept a pin on the word of a package it dropped: hubctl searches again
    try:
        res = resolve(asked, idx, pre=pre)
    except Refused as e:
        assert "\n" not in str(e) and str(e)
        assert alone is None, f"refused ({e}) but resolvelib alone picks {alone} for {asked} (pre={pre})"
        assert not _brute_force(specs, asked, pre, grounded=True), f"refused ({e}) although a set exists for {asked} (pre={pre})"
        return
    choice = {p.name: by_name[p.name][p.version] for p in res.picks}
    assert _policy_ok(choice, asked, pre, versions_of), f"{asked} -> {picked(res)} breaks a rule"
    if alone is not None:
        assert alone == picked(res), f"{asked}: resolve() picks {picked(res)}, resolvelib alone {alone}"
