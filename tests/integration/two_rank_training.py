"""One rank of a two-rank DeepSpeed run on CPU (gloo): trains the tiny model on the
embedded norms with a ZeRO stage and writes its losses as JSON.

    RANK=r WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=p python two_rank_training.py STAGE LORA OUT
"""

from __future__ import annotations

import json
import os
import sys

import torch


def main() -> None:
    stage, lora, out = int(sys.argv[1]), sys.argv[2] == "lora", sys.argv[3]
    loaded = len(sys.argv) > 4 and sys.argv[4] == "loaded"  # from a saved folder, partitioned as it loads
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
    partitioned = None
    if loaded:
        from embodiment.models import load_model
        from embodiment.models.tiny import save_tiny_model
        from embodiment.training.distributed import ensure_distributed, partitioned_loading

        # each rank saves its own copy before the group exists (save_pretrained writes on rank 0 only)
        folder = save_tiny_model(f"{out}.model{os.environ['RANK']}", seed=1)
        ensure_distributed()
        with partitioned_loading(cfg):
            model = load_model(folder, device="cpu", dtype="float32").model
            # numel() of a ZeRO-3 parameter is 0 on every rank: its values live in partitions
            partitioned = all(hasattr(p, "ds_id") and p.numel() == 0 for p in model.parameters())
            result = train(cfg, model, tok, TaskData(norms={"en": picked}), f"{out}.d")
    else:
        result = train(cfg, tiny_causal_lm(tok, seed=1), tok, TaskData(norms={"en": picked}), f"{out}.d")
    if torch.distributed.get_rank() == 0:
        with open(out, "w") as fh:
            json.dump({"losses": result.losses, "world": result.world_size, "partitioned": partitioned}, fh)
    # both ranks leave together and close the group: a rank that exits while gloo's threads
    # still serve its peer aborts ("terminate called without an active exception")
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
