"""Multi-token embeddings bind each vector to the token the file names it by, not by position: `<sonic>` and
`<sonic-bad>` sort the other way round from how a manifest lists them (demo hub, CPU)."""

from __future__ import annotations

import pytest

from hubctl.errors import Refused
from tests.run.test_generate import gen, local_package, locked, make_lock

pytestmark = pytest.mark.slow


def _vectors():
    import torch

    g = torch.Generator().manual_seed(9)
    return torch.randn(2, 32, generator=g) * 0.8, torch.randn(2, 32, generator=g) * 0.8


def test_a_two_token_embedding_binds_vectors_by_the_names_the_file_gives_them(demo_hub, tmp_path):
    from safetensors.torch import save_file

    sonic, bad = _vectors()
    both = tmp_path / "both.safetensors"
    save_file({"<sonic>": sonic, "<sonic-bad>": bad}, str(both))
    only = tmp_path / "only.safetensors"
    save_file({"<sonic>": sonic}, str(only))
    sd14 = locked(demo_hub, "demo-sd", "1.4")
    pair = local_package("sonic", "embedding", "demo-sd1", {"learned_embeds.safetensors": both}, tokens=("<sonic>", "<sonic-bad>"))
    single = local_package("sonic-only", "embedding", "demo-sd1", {"learned_embeds.safetensors": only}, tokens=("<sonic>",))
    a = gen(make_lock(sd14, pair), tmp_path, "pair", prompt="a photo of <sonic>")
    b = gen(make_lock(sd14, single), tmp_path, "single", prompt="a photo of <sonic>")
    assert a["image_sha256"] == b["image_sha256"], "<sonic> must get the file's <sonic> vectors"
    assert a["params"] and a["image_sha256"]


def test_tokens_the_file_does_not_name_are_refused_naming_the_file(demo_hub, tmp_path):
    from safetensors.torch import save_file

    sonic, bad = _vectors()
    f = tmp_path / "both.safetensors"
    save_file({"<sonic>": sonic, "<sonic-bad>": bad}, str(f))
    pkg = local_package("sonic", "embedding", "demo-sd1", {"learned_embeds.safetensors": f}, tokens=("<a>", "<b>"))
    with pytest.raises(Refused, match=r"sonic 1.0: .*learned_embeds.safetensors.*<sonic-bad>.*<a>"):
        gen(make_lock(locked(demo_hub, "demo-sd", "1.4"), pkg), tmp_path, "x", prompt="a photo of <a>")
