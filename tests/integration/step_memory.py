"""Run one configuration's training steps of the embedded SmolLM2-135M on CPU and print, as
JSON, the peak resident memory the steps added and egrid's plan for the same step.

    python tests/integration/step_memory.py lora|full ROWS TOKENS ckpt|plain

Run with MALLOC_MMAP_THRESHOLD_ set (glibc then returns freed tensors to the system at
once, so the resident size follows what is alive instead of what the allocator kept)."""

from __future__ import annotations

import json
import sys
import threading
import time

import psutil
import torch

from embodiment.models import load_model
from embodiment.models.loading import locate
from embodiment.training.plan import model_shape, training_memory


def main() -> None:
    lora, rows, tokens, ckpt = sys.argv[1] == "lora", int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "ckpt"
    torch.manual_seed(0)
    proc = psutil.Process()
    folder, _ = locate("smollm2-135m")
    shape = model_shape(str(folder))
    before = proc.memory_info().rss
    model = load_model("smollm2-135m", device="cpu", dtype="float32").model
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear"))
    if ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    ids = torch.randint(0, shape.vocab, (rows, tokens))
    peak, done = [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    for _ in range(2):  # the second step holds the optimizer's state from the first
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), logits_to_keep=1).logits
        logits.float().logsumexp(-1).mean().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    done.set()
    sampler.join()
    plan = training_memory(
        shape,
        precision="fp32",
        lora=lora,
        rank=8,
        zero_stage=0,
        world=1,
        tokens=rows * tokens,
        longest=tokens,
        rows=rows,
        checkpointing=ckpt,
    )
    print(json.dumps({"measured": peak[0] - before, "planned": plan.total}))


if __name__ == "__main__":
    main()
