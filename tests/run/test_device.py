"""Device/dtype choice and the attention backend probe: reported, never a crash."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from hubctl.errors import BadInput
from hubctl.run.attention import choose_attention, probe_xformers
from hubctl.run.device import pick_device, pick_dtype


def test_auto_on_a_cpu_machine_is_cpu_fp32():
    assert not torch.cuda.is_available()  # this suite runs on CPU machines
    assert pick_device("auto") == "cpu"
    assert pick_dtype("auto", "cpu") is torch.float32
    assert pick_dtype("auto", "cuda") is torch.float16
    assert pick_dtype("bf16", "cpu") is torch.bfloat16


def test_asking_for_a_missing_device_or_unknown_dtype_is_bad_input():
    with pytest.raises(BadInput, match="no CUDA device"):
        pick_device("cuda")
    with pytest.raises(BadInput, match="expected"):
        pick_device("tpu")
    with pytest.raises(BadInput, match="fp8"):
        pick_dtype("fp8", "cpu")


def test_xformers_is_not_used_on_cpu_and_sdpa_is_reported():
    class Pipe:
        def enable_xformers_memory_efficient_attention(self):  # pragma: no cover - must not be called
            raise AssertionError("xformers enabled on cpu")

    choice = choose_attention(Pipe(), "cpu", torch.float32)
    assert choice.backend == "sdpa" and "cpu" in choice.reason


def test_an_xformers_wheel_whose_kernels_fail_falls_back_to_sdpa(monkeypatch):
    # A stand-in for the failure seen on real CUDA/torch pairs: the wheel imports, its kernel call raises.
    # (No CUDA here, so the probe's tensors cannot even be made: either way it must report, not crash.)
    fake = types.ModuleType("xformers")
    fake.__version__ = "0.0.fake"
    ops = types.ModuleType("xformers.ops")

    def broken(*a, **k):
        raise RuntimeError("No operator found for memory_efficient_attention_forward")

    ops.memory_efficient_attention = broken
    fake.ops = ops
    monkeypatch.setitem(sys.modules, "xformers", fake)
    monkeypatch.setitem(sys.modules, "xformers.ops", ops)
    ok, why = probe_xformers("cuda", torch.float16)
    assert ok is False and "failed" in why

    class Pipe:
        def enable_xformers_memory_efficient_attention(self):  # pragma: no cover
            raise AssertionError("must not enable a failing xformers")

    choice = choose_attention(Pipe(), "cuda", torch.float16)
    assert choice.backend == "sdpa" and "failed" in choice.reason
