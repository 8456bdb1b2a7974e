"""The vocabulary head only where its logits are read: concept embeddings, multiple-choice
scoring and the mcq / pairwise / alignment training steps, each vs the same code with the
head run on every position (as they ran before), on SmolLM2-135M, in one run.

The peer is the same function on the same model, with two hooks that make the model
compute logits on every position and hand back only the ones asked for: the head's full
cost, none of its upcast or softmax (the old code also upcast and soft-maxed every
position, so it was slower still). Both sides must return the same numbers; the script
stops if they do not. Rounds alternate ours/peer; times are medians.

Usage: python bench/bench_vocab_head.py [--concepts 256] [--items 48] [--batch 16] [--rounds 3]
"""

from __future__ import annotations

import argparse
from contextlib import contextmanager

import numpy as np
import torch
from _ab import alternate, colour_questions, spread


@contextmanager
def head_on_every_position(model):
    """The peer: the model computes logits at every position, then returns the asked-for ones."""
    asked = {}

    def before(module, args, kwargs):
        asked["keep"] = kwargs.get("logits_to_keep", 0)
        kwargs["logits_to_keep"] = 0  # 0 keeps every position
        return args, kwargs

    def after(module, args, kwargs, out):
        keep = asked["keep"]
        if isinstance(keep, torch.Tensor):
            out.logits = out.logits[:, keep]
        elif keep:
            out.logits = out.logits[:, -keep:]
        return out

    hooks = [
        model.register_forward_pre_hook(before, with_kwargs=True),
        model.register_forward_hook(after, with_kwargs=True),
    ]
    try:
        yield
    finally:
        for h in hooks:
            h.remove()


def _with_full_head(fn, model):
    def peer():
        with head_on_every_position(model):
            return fn()

    return peer


def _workloads(args, lm):
    from embodiment.embeddings import extract_embeddings
    from embodiment.formats import FORMATS, TaskData
    from embodiment.norms import load_embedded
    from embodiment.choices import score_mcq
    from embodiment.training import ObjectiveModel

    model, tok = lm.model, lm.tokenizer
    norms = load_embedded()
    words = spread(norms.words, args.concepts)
    sub = norms.select(words)
    items = colour_questions(args.items, spread_over_file=False, bench="bench_vocab_head")
    data = TaskData(norms={"en": sub}, mcq_items=items, seed=0)

    def train_steps(name):
        fmt = FORMATS[name]().configure(data)
        examples = fmt.examples(data)[: 4 * args.batch]
        batches = [fmt.collate(examples[i : i + args.batch], tok) for i in range(0, len(examples), args.batch)]
        module = ObjectiveModel(model, fmt.prepare(tok))

        def run():
            model.train()
            losses = []
            for batch in batches:
                loss = module(**batch)
                loss.backward()
                losses.append(loss.item())
            grad = sum(float(p.grad.double().square().sum()) for p in model.parameters() if p.grad is not None)
            model.zero_grad(set_to_none=True)
            model.eval()
            return np.array(losses + [grad])

        return run, f"{len(batches)} steps of {args.batch}"

    loads = {
        "embeddings": (
            lambda: extract_embeddings(model, tok, words, batch_size=32).vectors["mean"],
            f"{len(words)} concepts",
        ),
        "mcq scoring": (
            lambda: score_mcq(model, tok, items, batch_size=args.batch)["loglik"].to_numpy(),
            f"{len(items)} items x 4 options",
        ),
    }
    for name in ("mcq", "pairwise", "alignment"):
        loads[f"train {name} (fwd+bwd)"] = train_steps(name)
    return loads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--concepts", type=int, default=256)
    parser.add_argument("--items", type=int, default=48)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from embodiment.models import load_model

    lm = load_model(args.model)
    lm.model.eval()
    print(
        f"model {args.model}; vocabulary {lm.model.get_output_embeddings().weight.shape[0]:,}; "
        f"{torch.get_num_threads()} threads; {args.rounds} rounds, medians"
    )
    print(f"{'workload':<30} {'size':<22} {'ours (s)':>9} {'peer (s)':>9} {'ratio':>6}")
    for name, (fn, size) in _workloads(args, lm).items():
        o, p, _, _ = alternate(
            fn,
            _with_full_head(fn, lm.model),
            args.rounds,
            check=lambda a, b, name=name: np.testing.assert_allclose(
                a, b, rtol=1e-4, atol=1e-5, err_msg=f"{name}: ours and the peer disagree"
            ),
        )
        print(f"{name:<30} {size:<22} {o:9.2f} {p:9.2f} {p / o:5.2f}x", flush=True)
    print("ratio: peer / ours time per workload above (head on every position / head only where read)")


if __name__ == "__main__":
    main()
