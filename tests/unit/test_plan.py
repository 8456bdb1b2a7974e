"""egrid plan: a model's shape from its config on the meta device, memory per rank against
DeepSpeed's own ZeRO estimators, and the command on a shipped job."""

from __future__ import annotations

import pytest

from embodiment.training.plan import model_shape, training_memory


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from embodiment.models.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("plan") / "tiny", hidden=32, layers=2, heads=4)


def test_shape_from_the_config_counts_what_loading_the_weights_counts(tiny):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    shape = model_shape(tiny)
    real = AutoModelForCausalLM.from_pretrained(tiny)
    assert shape.params == sum(p.numel() for p in real.parameters())
    assert (shape.hidden, shape.layers) == (real.config.hidden_size, real.config.num_hidden_layers)
    lora = get_peft_model(real, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear"))
    assert shape.trainable(True, 8) == sum(p.numel() for p in lora.parameters() if p.requires_grad)
    assert shape.trainable(False, 8) == shape.params


@pytest.mark.parametrize("gpus", [1, 2, 8])
def test_model_states_agree_with_deepspeeds_zero_estimators(tiny, gpus):
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    shape = model_shape(tiny)
    common = dict(precision="bf16", lora=False, rank=8, world=gpus, tokens=1, longest=1, rows=1, checkpointing=False)
    two = training_memory(shape, zero_stage=2, **common)
    _, expected = estimate_zero2_model_states_mem_needs(shape.params, num_gpus_per_node=gpus, cpu_offload=False)
    assert two.weights + two.gradients + two.optimizer == pytest.approx(expected, rel=1e-6)
    three = training_memory(shape, zero_stage=3, **common)
    largest = max(i * o for i, o in shape.linear_params)
    _, expected, _ = estimate_zero3_model_states_mem_needs(
        shape.params, largest, num_gpus_per_node=gpus, cpu_offload=False, cpu_offload_params=False
    )
    # DeepSpeed adds the largest layer gathered whole; egrid counts 16-bit gradients too
    assert three.weights + three.gradients + three.optimizer == pytest.approx(expected, rel=0.15)
    if gpus > 1:
        assert three.weights < two.weights  # ZeRO-3 partitions the weights, ZeRO-2 does not


def test_checkpointing_keeps_less_and_memory_grows_with_the_batch(tiny):
    shape = model_shape(tiny)
    args = dict(precision="fp32", lora=True, rank=8, zero_stage=0, world=1, longest=64)
    small = training_memory(shape, tokens=8 * 64, rows=8, checkpointing=False, **args)
    large = training_memory(shape, tokens=32 * 64, rows=32, checkpointing=False, **args)
    kept = training_memory(shape, tokens=32 * 64, rows=32, checkpointing=True, **args)
    assert small.activations < large.activations and kept.activations < large.activations
    assert small.weights == large.weights == kept.weights


def test_egrid_plan_prints_a_row_per_condition_and_the_total(capsys):
    from grid.cli import main

    assert main(["plan", "jobs/demo.yaml", "--gpu-memory", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "per_rank_GiB" in out and "largest_batch" in out
    assert "False" in out  # SmolLM2-135M's fp32 weights alone pass 0.5 GiB
    assert out.strip().splitlines()[-1].startswith("plan: ")


def test_egrid_plan_refuses_an_unknown_accelerator(capsys):
    from grid.cli import main

    assert main(["plan", "jobs/demo.yaml", "--gpu", "tpu9"]) == 2
    assert "egrid: error:" in capsys.readouterr().err
