"""What a fine-tuning run needs before it starts: parameters, memory per rank, time.

The model is built from its config on the meta device (accelerate's ``init_empty_weights``:
no weights are read or allocated), so a 70B model is planned on a laptop. Memory per rank:

* weights: every parameter in the job's dtype (fp32: 4 bytes; bf16: 2; amp_bf16: fp32
  weights), partitioned across ranks under ZeRO-3;
* gradients of the trainable parameters (LoRA's, or all), partitioned under ZeRO-2 and -3;
* Adam's two moments in fp32 (and an fp32 master copy under bf16), partitioned under
  ZeRO-1 and up, or none on the device when offloaded to CPU;
* activations kept for the backward pass, per transformer layer per token: with
  SwiGLU MLPs (intermediate width i) and no dropout, about 8 h + 4 i values (inputs of the
  two norms, Q/K/V, the attention output, the MLP's input, gate, up and product), the
  attention probabilities (heads x sequence) where the attention is computed eagerly, and
  the logits the loss reads; with gradient checkpointing only each layer's input is kept,
  plus one layer's full set while it is recomputed.

Time: ``6 x active parameters`` FLOPs per trained token for full fine-tuning and
``4 x`` for LoRA (no weight gradients of the frozen weights), x 4/3 with checkpointing
(the forward pass runs twice), at a stated fraction (MFU) of the accelerator's peak.
"""

from __future__ import annotations

from dataclasses import dataclass

#: bytes per weight, per gradient, and of optimizer state per trainable parameter, by precision
#: (bf16: 16- and 32-bit gradients, and an fp32 master copy beside Adam's moments, as DeepSpeed counts them)
PRECISION_BYTES = {"fp32": (4, 4, 8), "bf16": (2, 6, 12), "amp_bf16": (4, 4, 8)}


@dataclass(frozen=True)
class ModelShape:
    """A causal LM's sizes, read from its config.

    Attributes:
        params: every parameter (tied embeddings counted once).
        linear_params: parameters of the linear layers LoRA can target ("all-linear": every
            ``nn.Linear`` but the output head), as ``(in_features, out_features)`` pairs.
        hidden: hidden width h.
        intermediate: MLP width i.
        layers: transformer blocks.
        heads: attention heads.
        vocab: vocabulary size.
    """

    params: int
    linear_params: tuple[tuple[int, int], ...]
    hidden: int
    intermediate: int
    layers: int
    heads: int
    vocab: int

    def trainable(self, lora: bool, rank: int) -> int:
        """Trainable parameters: LoRA's A and B of every targeted linear layer, or all."""
        if not lora:
            return self.params
        return sum(rank * (fan_in + fan_out) for fan_in, fan_out in self.linear_params)


def model_shape(folder: str, *, trust_remote_code: bool = False) -> ModelShape:
    """The shape of the model saved in ``folder`` (a ``from_pretrained`` folder), from its
    config alone: the model is built on the meta device, nothing is loaded."""
    import torch
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    output = model.get_output_embeddings()
    params = sum(p.numel() for p in model.parameters())
    tied = getattr(config, "tie_word_embeddings", False) and output is not None
    if tied and output.weight is not model.get_input_embeddings().weight:  # not tied on the meta device
        params -= output.weight.numel()
    linears = tuple(
        (m.in_features, m.out_features) for m in model.modules() if isinstance(m, torch.nn.Linear) and m is not output
    )
    text = getattr(config, "text_config", config)
    return ModelShape(
        params=params,
        linear_params=linears,
        hidden=int(text.hidden_size),
        intermediate=int(getattr(text, "intermediate_size", 4 * text.hidden_size)),
        layers=int(text.num_hidden_layers),
        heads=int(text.num_attention_heads),
        vocab=int(text.vocab_size),
    )


@dataclass(frozen=True)
class MemoryPlan:
    """Bytes per rank of one training step."""

    weights: float
    gradients: float
    optimizer: float
    activations: float

    @property
    def total(self) -> float:
        """The step's peak: activations are freed as the backward pass makes the gradients,
        so the two never all live at once (measured on CPU: docs/performance.md)."""
        return self.weights + self.optimizer + max(self.activations, self.gradients)


def activation_bytes(
    shape: ModelShape,
    tokens: int,
    longest: int,
    rows: int,
    *,
    precision: str,
    checkpointing: bool,
    eager_attention: bool = True,
    logits_per_row: int = 1,
) -> float:
    """Activations kept for the backward pass of a micro-batch of ``tokens`` padded tokens
    (its longest sequence ``longest`` tokens, ``rows`` sequences)."""
    value = PRECISION_BYTES[precision][0] if precision != "amp_bf16" else 2
    per_layer = tokens * (8 * shape.hidden + 4 * shape.intermediate) * value
    if eager_attention:
        per_layer += shape.heads * tokens * longest * value
    kept = shape.layers * tokens * shape.hidden * value + per_layer if checkpointing else shape.layers * per_layer
    # the loss reads these positions' logits in fp32 (and their softmax)
    return kept + 2 * rows * logits_per_row * shape.vocab * 4


def training_memory(
    shape: ModelShape,
    *,
    precision: str,
    lora: bool,
    rank: int,
    zero_stage: int,
    world: int,
    tokens: int,
    longest: int,
    rows: int,
    checkpointing: bool,
    offload_optimizer: bool = False,
    logits_per_row: int = 1,
) -> MemoryPlan:
    """Memory per rank of a training step on a micro-batch of ``tokens`` padded tokens
    (see the module doc for what is counted)."""
    weight, grad, optim = PRECISION_BYTES[precision]
    trainable = shape.trainable(lora, rank)
    weights = shape.params * weight / (world if zero_stage >= 3 else 1)
    if lora:
        weights += trainable * 4  # the adapters train in fp32
        grad, optim = 4, 8
    gradients = trainable * grad / (world if zero_stage >= 2 else 1)
    optimizer = 0.0 if offload_optimizer else trainable * optim / (world if zero_stage >= 1 else 1)
    activations = activation_bytes(
        shape, tokens, longest, rows, precision=precision, checkpointing=checkpointing, logits_per_row=logits_per_row
    )
    return MemoryPlan(weights, gradients, optimizer, activations)


def step_flops(shape: ModelShape, *, lora: bool, tokens: float, checkpointing: bool) -> float:
    """FLOPs of training on ``tokens`` tokens."""
    return (4 if lora else 6) * shape.params * (4 / 3 if checkpointing else 1) * tokens
