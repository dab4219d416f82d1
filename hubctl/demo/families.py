"""The demo hub's two tiny families as data, and the tiny CLIP tokenizer's vocabulary.

Owns: ``demo-sd1`` (epsilon, 1x1-conv proj_in, cross-attention 32, one text encoder 32 wide with 2 layers)
and ``demo-sd2`` (v-prediction, linear proj_in, cross-attention 64, text encoder 64 wide with 3 layers),
declared with the same fields as ``registry/families.toml`` (:class:`hubctl.registry.families.Family`), with the
reference configs (unet, text_encoder, vae, scheduler) that build the demo's models; and a byte-level BPE
vocabulary learnt from a fixed word list, so the tokenizer is made locally (no download) and is the same
on every build.

Pure data and pure Python: no torch, no I/O. The builders live in :mod:`hubctl.demo.models`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

__all__ = ["FAMILIES", "DEMO_WORDS", "EMBEDDING_TOKEN", "family_entry", "tokenizer_vocab_and_merges"]

EMBEDDING_TOKEN = "<demo-token>"

# Words the tiny tokenizer learns merges from (a fixed list: same vocabulary every build).
DEMO_WORDS = (
    "a photo of an astronaut riding a horse on the moon in the style of demo style token canny edge "
    "painting portrait landscape city night day red green blue yellow black white cat dog bird tree house "
    "mountain river sea sky sun cloud flower forest castle robot car street woman man girl boy old young "
    "beautiful detailed high quality best art drawing sketch oil watercolor digital render light dark"
).split()

_N_MERGES = 300
_SCHEDULER_COMMON: dict[str, Any] = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "steps_offset": 1,
    "set_alpha_to_one": False,
}


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP byte -> printable unicode table (same as transformers' CLIP tokenizer)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def tokenizer_vocab_and_merges(words: tuple[str, ...] = DEMO_WORDS, n_merges: int = _N_MERGES) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A CLIP-style byte-level BPE vocabulary learnt from ``words`` (deterministic: ties break by text)."""
    byte_chars = list(_bytes_to_unicode().values())
    corpus: Counter[tuple[str, ...]] = Counter()
    for w in words:
        symbols = [c for c in w.lower()]
        symbols[-1] = symbols[-1] + "</w>"
        corpus[tuple(symbols)] += 1
    merges: list[tuple[str, str]] = []
    for _ in range(n_merges):
        pairs: Counter[tuple[str, str]] = Counter()
        for word, count in corpus.items():
            for a, b in zip(word, word[1:]):
                pairs[(a, b)] += count
        if not pairs:
            break
        best = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        merges.append(best)
        new_corpus: Counter[tuple[str, ...]] = Counter()
        for word, count in corpus.items():
            out: list[str] = []
            i = 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            new_corpus[tuple(out)] += count
        corpus = new_corpus
    tokens = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab: dict[str, int] = {}
    for t in tokens:
        vocab.setdefault(t, len(vocab))
    return vocab, merges


_VOCAB_SIZE = len(tokenizer_vocab_and_merges()[0])


def _unet(cross: int, linear: bool, heads: Any) -> dict[str, Any]:
    return {
        "_class_name": "UNet2DConditionModel",
        "sample_size": 32,
        "in_channels": 4,
        "out_channels": 4,
        "layers_per_block": 2,
        "block_out_channels": [32, 64],
        "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
        "cross_attention_dim": cross,
        "attention_head_dim": heads,
        "use_linear_projection": linear,
        "upcast_attention": False,
        "norm_num_groups": 32,
    }


def _text_encoder(width: int, layers: int, act: str) -> dict[str, Any]:
    return {
        "_class_name": "CLIPTextModel",
        "hidden_size": width,
        "intermediate_size": width * 2,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
        "projection_dim": 32,
        "hidden_act": act,
        "vocab_size": _VOCAB_SIZE,
        "max_position_embeddings": 77,
        "bos_token_id": _VOCAB_SIZE - 2,
        "eos_token_id": _VOCAB_SIZE - 1,
        "pad_token_id": _VOCAB_SIZE - 1,
    }


_VAE: dict[str, Any] = {
    "_class_name": "AutoencoderKL",
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "block_out_channels": [32, 64],
    "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
    "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"],
    "layers_per_block": 1,
    "norm_num_groups": 32,
    "sample_size": 64,
    "scaling_factor": 0.18215,
}

# The two tiny families, declared with the same fields as registry/families.toml (hubctl.registry.families.Family).
FAMILIES: dict[str, dict[str, Any]] = {
    "demo-sd1": {
        "id": "demo-sd1",
        "title": "Demo SD 1.x (tiny, offline)",
        "cross_attention_dim": 32,
        "text_encoder_widths": [32],
        "text_encoder_layers": [2],
        "use_linear_projection": False,
        "unet_block_out_channels": [32, 64],
        "default_resolution": 64,
        "prediction_types": ["epsilon"],
        "aliases": ["demo-sd-1", "demo_v1"],
        "reference": {
            "unet": _unet(32, False, 8),
            "text_encoder": _text_encoder(32, 2, "quick_gelu"),
            "vae": _VAE,
            "scheduler": {"_class_name": "PNDMScheduler", **_SCHEDULER_COMMON, "prediction_type": "epsilon", "skip_prk_steps": True},
        },
    },
    "demo-sd2": {
        "id": "demo-sd2",
        "title": "Demo SD 2.x (tiny, offline; v-prediction)",
        "cross_attention_dim": 64,
        "text_encoder_widths": [64],
        "text_encoder_layers": [3],
        "use_linear_projection": True,
        "unet_block_out_channels": [32, 64],
        "default_resolution": 64,
        "prediction_types": ["v_prediction", "epsilon"],
        "aliases": ["demo-sd-2", "demo_v2"],
        "reference": {
            "unet": _unet(64, True, [2, 4]),
            "text_encoder": _text_encoder(64, 3, "gelu"),
            "vae": _VAE,
            "scheduler": {"_class_name": "DDIMScheduler", **_SCHEDULER_COMMON, "prediction_type": "v_prediction", "clip_sample": False},
        },
    },
}


def family_entry(family: str) -> dict[str, Any]:
    """A deep copy of one family's families.toml entry."""
    import copy

    return copy.deepcopy(FAMILIES[family])
