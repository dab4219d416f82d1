"""Hostile headers (hypothesis, 10,700 cases over the pure parser: 1,500 structured, 6,500 damaged
real-like headers from a seed, 2,500 random byte strings, 200 huge claims): never a traceback other than
BadInput/IncompleteFile, never a hang, never memory in proportion to a size the header claims."""

from __future__ import annotations

import json
import random
import struct
import tracemalloc

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubctl.errors import BadInput
from hubctl.probe.header import DTYPE_BITS, parse_header_prefix

_txt = st.text(alphabet="ab\n'\"\\_.\u00e9\x00", max_size=6)
_dtypes = st.one_of(st.sampled_from(sorted(DTYPE_BITS)), _txt)
_ints = st.one_of(st.integers(min_value=-5, max_value=2**70), st.integers(0, 64), st.booleans(), st.floats(allow_nan=True), st.none(), _txt)
_entry = st.fixed_dictionaries(
    {"dtype": _dtypes, "shape": st.one_of(st.lists(_ints, max_size=5), _ints), "data_offsets": st.one_of(st.lists(_ints, max_size=3), _ints)},
    optional={"extra": _ints},
)
_meta = st.one_of(st.none(), st.dictionaries(_txt, st.one_of(_txt, _ints), max_size=3))
_header = st.dictionaries(_txt, st.one_of(_entry, _ints, st.lists(_ints, max_size=2)), max_size=6).flatmap(
    lambda d: _meta.map(lambda m: {**d, "__metadata__": m} if m is not None else d))


def _encode(header: dict, claimed: int | None, tail: bytes) -> bytes:
    raw = json.dumps(header).encode()
    n = len(raw) if claimed is None else claimed
    return struct.pack("<Q", n) + raw + tail


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(header=_header, claimed=st.one_of(st.none(), st.integers(0, 2**64 - 1)), tail=st.binary(max_size=8),
       size=st.one_of(st.none(), st.integers(0, 2**63)))
def test_structured_hostile_headers_only_raise_bad_input(header, claimed, tail, size) -> None:
    buf = _encode(header, claimed, tail)
    try:
        h = parse_header_prefix(buf, origin="fuzz", file_size=size)
    except BadInput as e:  # IncompleteFile is a BadInput
        assert "\n" not in str(e)
        return
    # accepted: then it really is consistent
    pos = 0
    for t in sorted(h.tensors.values(), key=lambda t: t.begin):
        assert t.begin == pos and t.nbytes * 8 == t.numel * DTYPE_BITS[t.dtype]
        pos = t.end
    assert size is None or size == h.file_size


@settings(max_examples=2500, deadline=None, suppress_health_check=list(HealthCheck))
@given(buf=st.binary(max_size=200), size=st.one_of(st.none(), st.integers(0, 2**64)))
def test_random_bytes_only_raise_bad_input(buf, size) -> None:
    try:
        parse_header_prefix(buf, origin="fuzz", file_size=size)
    except BadInput:
        pass


_DT = sorted(DTYPE_BITS)


def _hostile(rng: random.Random) -> tuple[bytes, int | None]:
    """A header built like a real one, then damaged in one or more of the ways real files are."""
    header: dict = {}
    pos = 0
    for i in range(rng.randint(0, 8)):
        dt = rng.choice(_DT)
        shape = [rng.randint(0, 6) for _ in range(rng.randint(0, 4))]
        n = 1
        for d in shape:
            n *= d
        nbytes = n * DTYPE_BITS[dt] // 8
        entry = {"dtype": dt, "shape": shape, "data_offsets": [pos, pos + nbytes]}
        pos += nbytes
        m = rng.random()
        if m < 0.05:
            entry["dtype"] = rng.choice(["f16", "", "F128", 16, None])
        elif m < 0.10:
            entry["shape"] = rng.choice([[-1], [True], [1.5], "3", [2**80, 2**80], None, [[1]]])
        elif m < 0.15:
            entry["data_offsets"] = rng.choice([[0], [5, 1], [-1, 3], [0, 2**70], "0-4", [0.0, 4.0], [pos, pos]])
        elif m < 0.18:
            entry["extra"] = 1
        elif m < 0.20:
            del entry[rng.choice(list(entry))]
        elif m < 0.25:
            entry = rng.choice([1, "x", [], None, {"dtype": "F16"}])
        header[rng.choice([f"t{i}", "__metadata__", "", "\n", f"t{i}.weight"])] = entry
    if rng.random() < 0.3:
        header["__metadata__"] = rng.choice([{"a": "b"}, {"a": 1}, {"a": {"b": "c"}}, [], "x", None, {"": ""}])
    raw = json.dumps(header).encode()
    r = rng.random()
    if r < 0.1 and len(raw) > 2:
        cut = rng.randrange(1, len(raw))
        raw = raw[:cut]
    elif r < 0.2 and raw:
        i = rng.randrange(len(raw))
        raw = raw[:i] + bytes([rng.randrange(256)]) + raw[i + 1:]
    elif r < 0.25:
        raw = raw.replace(b'"t1"', b'"t0"')  # duplicate keys, as a hand-edited file may carry
    elif r < 0.3:
        raw = b"{" + b'"a":' * rng.randint(1, 5000) + b"1" + b"}" * rng.randint(0, 3)
    elif r < 0.35:
        raw = raw + b" " * rng.randint(1, 7)
    n = len(raw)
    if rng.random() < 0.1:
        n = rng.choice([0, 1, n - 1, n + 1, 2**31, 2**64 - 1, 100_000_001])
    data = b"\0" * (pos if rng.random() < 0.8 else rng.randint(0, pos + 4))
    buf = struct.pack("<Q", n) + raw + data
    size = len(buf) if rng.random() < 0.8 else rng.choice([None, 0, len(buf) - 1, len(buf) + 1, 2**40])
    return buf, size


@settings(max_examples=6500, deadline=None, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 2**64 - 1))
def test_damaged_real_like_headers_only_raise_bad_input(seed) -> None:
    buf, size = _hostile(random.Random(seed))
    try:
        h = parse_header_prefix(buf, origin="fuzz", file_size=size)
    except BadInput as e:
        assert "\n" not in str(e)
        return
    assert size is None or size == h.file_size


@settings(max_examples=200, deadline=None)
@given(n=st.integers(10**6, 10**8), dims=st.lists(st.integers(10**6, 10**12), min_size=1, max_size=6))
def test_claimed_sizes_cost_no_memory(n, dims) -> None:
    """A header that claims 100 MB of JSON or tensors of 10^70 elements allocates nothing of that size."""
    entry = {"a": {"dtype": "F32", "shape": dims, "data_offsets": [0, 10**18]}}
    tracemalloc.start()
    try:
        for buf in (struct.pack("<Q", n) + b"{}", _encode(entry, None, b"")):
            try:
                parse_header_prefix(buf, origin="fuzz", file_size=10**20)
            except BadInput:
                pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


# ------------------------------------------------------------------------------------------ classification
# A header can be perfectly valid and still hostile to the classifier: LoRA markers on scalars, embeddings of
# zero width, a "UNet" with 1-D convs. Classification and the compatibility check must answer, never crash.

_VOCAB = [
    "lora_unet_down_blocks_0_attentions_0_proj_in", "lora_te_text_model_encoder_layers_0_self_attn_q_proj",
    "lora_te2_text_model_encoder_layers_3_mlp_fc1", "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k",
    "text_encoder.text_model.encoder.layers.0.self_attn.k_proj", "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k",
    "down_blocks.0.attentions.0.transformer_blocks.0.attn2.processor.to_out_lora",
]
_SUFFIX = [".lora_down.weight", ".lora_up.weight", ".lora_A.weight", ".lora_B.weight", ".alpha", ".hada_w1_a", ".hada_w1_b",
           ".hada_t1", ".lokr_w1", ".lokr_w2", ".lokr_w1_a", ".lokr_w2_b", ".lokr_t2", ".diff", ".down.weight", ".up.weight"]
_PLAIN = ["emb_params", "clip_l", "clip_g", "string_to_param.*", "<tok>", "conv_in.weight", "time_embedding.linear_1.weight",
          "model.diffusion_model.input_blocks.0.0.weight", "model.diffusion_model.input_blocks.1.1.proj_in.weight",
          "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight",
          "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight", "control_model.input_hint_block.0.weight",
          "controlnet_cond_embedding.conv_in.weight", "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight",
          "down_blocks.0.attentions.0.proj_in.weight", "encoder.conv_in.weight", "decoder.conv_in.weight",
          "text_model.encoder.layers.0.self_attn.q_proj.weight", "add_embedding.linear_1.weight", "first_stage_model.x"]
_name = st.one_of(st.tuples(st.sampled_from(_VOCAB), st.sampled_from(_SUFFIX)).map("".join), st.sampled_from(_PLAIN))
_shape = st.lists(st.sampled_from([0, 1, 2, 3, 4, 32, 768, 1024]), max_size=4).map(tuple)
_md = st.dictionaries(st.sampled_from(["ss_base_model_version", "ss_v2", "modelspec.architecture", "modelspec.prediction_type",
                                        "ss_network_alpha", "ss_network_dim", "lora_adapter_metadata", "ss_v_parameterization"]),
                      st.sampled_from(["sd_v1", "sd_v2_v", "True", "stable-diffusion-v2-768-v/lora", "v", "x", "", "{}", "[1]",
                                       '{"lora_alpha": "a"}', "nan", "4"]), max_size=3)


@settings(max_examples=800, deadline=None, suppress_health_check=list(HealthCheck))
@given(tensors=st.dictionaries(_name, st.tuples(st.sampled_from(["F16", "F32", "BF16"]), _shape), max_size=8), md=_md)
def test_classification_and_check_never_crash_on_valid_but_odd_headers(tensors, md) -> None:
    from hubctl.compat.check import check_set
    from hubctl.registry.families import default_families
    from hubctl.probe.classify import classify
    from hubctl.probe.header import TensorInfo
    from hubctl.probe.types import Probe

    fams = default_families()
    table = {k: TensorInfo(dt, shp, 0, 0) for k, (dt, shp) in tensors.items()}
    p = classify(table, md, families=fams, path="odd.safetensors", scalars={k: 1.0 for k in tensors if k.endswith(".alpha")})
    assert p.kind in ("checkpoint", "lora", "embedding", "controlnet", "vae", "unknown")
    json.dumps(p.to_json())
    base = Probe(path="sd", format="manifest", kind="checkpoint", family="sd1", prediction="epsilon", variant=None, layout=None)
    check_set(base, [p], families=fams)
    check_set(p, [p], families=fams)
