"""One rank of a two-rank DeepSpeed run on CPU (gloo): trains the tiny model on the
embedded norms with a ZeRO stage and writes its losses as JSON.

    RANK=r WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=p python two_rank_training.py STAGE LORA OUT
"""

from __future__ import annotations

import json
import sys

import torch


def main() -> None:
    stage, lora, out = int(sys.argv[1]), sys.argv[2] == "lora", sys.argv[3]
    torch.set_num_threads(1)
    from embodiment.formats import TaskData
    from embodiment.models.tiny import tiny_causal_lm, tiny_tokenizer
    from embodiment.norms import load_embedded
    from embodiment.training import TrainConfig, train

    norms = load_embedded()
    picked = norms.select(words=list(norms.words)[::997][:32], dimensions=["Visual", "Haptic"])  # a fixed spread
    tok = tiny_tokenizer()
    cfg = TrainConfig(
        format="rating",
        lora=lora,
        lora_rank=4,
        learning_rate=3e-3,
        steps=6,
        batch_size=4,
        zero_stage=stage,
        engine="deepspeed",
        seed=0,
    )
    result = train(cfg, tiny_causal_lm(tok, seed=1), tok, TaskData(norms={"en": picked}), f"{out}.d")
    if torch.distributed.get_rank() == 0:
        with open(out, "w") as fh:
            json.dump({"losses": result.losses, "world": result.world_size}, fh)


if __name__ == "__main__":
    main()
