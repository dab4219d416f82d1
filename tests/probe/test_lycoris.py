"""LyCORIS LoCon / LoHa / LoKr files of real SD1 and SD2 shapes (sparse files: the real key set and shapes,
no data), with and without Tucker decomposition: what the probe reads of each module, and what ``check``
says of the set. Key layout: tests/fixtures/lycoris.py."""

from __future__ import annotations

import pytest

from tests.fixtures.lycoris import lycoris_metadata, lycoris_shapes
from tests.fixtures.sparse import write_safetensors

CASES = [(algo, tucker) for algo in ("locon", "loha", "lokr") for tucker in (True, False)]


def _file(sparse, tmp_path, fam: str, algo: str, tucker: bool, rank: int = 4):
    shapes = lycoris_shapes(sparse.modules(fam), algo, rank=rank, tucker=tucker)
    base = {"sd1": "sd_v1", "sd2": "sd_v2"}[fam]
    return write_safetensors(tmp_path / f"{fam}-{algo}-{'tucker' if tucker else 'plain'}.safetensors",
                             {k: ("F16", s) for k, s in shapes.items()}, lycoris_metadata(algo, rank, 1.0, base, tucker))


@pytest.mark.parametrize("algo, tucker", CASES)
def test_lycoris_modules_read_the_base_widths_not_the_rank(sparse, tmp_path, algo, tucker):
    from hubctl.probe import probe

    p = probe(_file(sparse, tmp_path, "sd1", algo, tucker))
    assert (p.kind, p.family, p.rank) == ("lora", "sd1", 4)
    table = sparse.modules("sd1")
    under = {c: {m.replace(".", "_"): s for m, s in mods.items()} for c, mods in table.items()}
    convs = 0
    for m in p.lora_modules:
        base = under[m.component][m.name]
        assert m.out_features == base[1], f"{m.name}: out {m.out_features}, the module has {base[1]}"
        if len(base) == 4 and base[2:] != (1, 1):
            convs += 1
            assert m.kernel == base[2:] or (m.kernel is None and m.in_features == base[0] * base[2] * base[3]), m
            if m.kernel is not None:
                assert m.in_features == base[0]
        else:
            assert m.in_features in (base[0], base[0] * (base[2] * base[3] if len(base) == 4 else 1))
    assert convs == 50, "every resnet and sampler 3x3 conv of the SD1 UNet is read"


@pytest.mark.parametrize("algo, tucker", CASES)
def test_check_accepts_a_correct_sd1_locon_on_sd1(sparse, tmp_path, algo, tucker):
    from hubctl.compat.gather import check_paths

    lyco = _file(sparse, tmp_path, "sd1", algo, tucker)
    v = check_paths(sparse.get("sd1-ldm"), [lyco])
    assert v.compatible, v.problems
    assert not [w for w in v.warnings if "partial" in w or "not checked" in w], v.warnings
    level = v.checked[0]["levels"]["structural"]
    n = int(level.split(" of ")[1].split()[0])
    assert level.startswith(f"{n} of {n} modules fit"), level


def test_check_cli_accepts_an_sd1_loha_with_tucker_convs(sparse, tmp_path, cli):
    r = cli("check", str(sparse.get("sd1-ldm")), str(_file(sparse, tmp_path, "sd1", "loha", True)))
    assert r.exit_code == 0, r.output
    assert "320 -> 4" not in r.output and "expects" not in r.output


@pytest.mark.parametrize("algo", ["loha", "lokr", "locon"])
def test_check_refuses_an_sd2_tucker_locon_on_sd1_for_the_cross_attention_width(sparse, tmp_path, algo):
    from hubctl.compat.gather import check_paths

    v = check_paths(sparse.get("sd1-ldm"), [_file(sparse, tmp_path, "sd2", algo, True)])
    assert not v.compatible
    reason = v.problems[0].reason
    assert "1024" in reason and "768" in reason, reason
