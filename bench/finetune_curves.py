"""Held-out Spearman and RSA against training step for one fine-tuning recipe.

Trains SmolLM2-135M (embedded) on the embedded Lancaster norms and scores a validation
set of *training-split* concepts that are never trained on (the curves hyperparameters
are chosen on), and the held-out test concepts once at the end. One JSON line per
evaluation point goes to ``--out`` (default ``results/curves/<tag>.jsonl``);
``python bench/plot_curves.py results/curves/*.jsonl`` draws them.

``--probe 15,22`` also fits the frozen-feature probe (ridge on the base model's pooled
hidden states of the same training words, those layers) and scores it on the same test
words: the reference the curve's end point is read against (one ``split: probe`` line
per layer).

Usage: python bench/finetune_curves.py --tag lr1e-3 --lr 1e-3 --steps 300 [--objective rating] [--probe 15,22]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from embodiment.formats import TaskData, get_format
from embodiment.formats.base import mean_spearman
from embodiment.metrics import rsa
from embodiment.models import load_model
from embodiment.norms import load_norms
from embodiment.splits import draw_sides
from embodiment.training import TrainConfig, load_head, train


def probe_figures(model, tokenizer, train_norms, test_norms, layers: list[int]) -> list[dict]:
    """The frozen probe per layer: held-out mean Spearman and RSA (with its CI)."""
    from embodiment.embeddings import extract_embeddings
    from embodiment.probe import evaluate_probe

    emb = extract_embeddings(model, tokenizer, list(train_norms.words) + list(test_norms.words), layers=layers)
    n = len(train_norms.words)
    out = []
    for layer in layers:
        x = emb.layer(layer)
        res = evaluate_probe(x[:n], train_norms.means, x[n:], test_norms.means, test_norms.dimensions, subsets=("all",))
        m = res.metrics
        spear = m[m["metric"] == "mean_spearman"]["value"].iloc[0]
        r = m[m["metric"] == "rsa"].iloc[0]
        out.append(
            {
                "split": "probe",
                "layer": layer,
                "mean_spearman": float(spear),
                "rsa": float(r["value"]),
                "rsa_ci": [float(r["ci_low"]), float(r["ci_high"])],
            }
        )
    return out


def held_out_figures(model, tokenizer, norms, objective: str, head=None) -> dict:
    """Mean per-dimension Spearman and study-recipe RSA of a model's predictions."""
    fmt = get_format(objective if objective in ("rating", "regression") else "rating")
    ev = fmt.evaluate(model, tokenizer, TaskData(norms={"en": norms}), head=head, batch_size=32)
    wide = ev.ratings.pivot(index="concept", columns="dimension", values="expected").loc[norms.words, norms.dimensions]
    return {"mean_spearman": mean_spearman(ev.ratings), "rsa": float(rsa(wide.to_numpy(), norms.means).value)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", required=True)
    parser.add_argument("--objective", default="rating")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--train-words", type=int, default=1000)
    parser.add_argument("--val-words", type=int, default=150)
    parser.add_argument("--test-words", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    parser.add_argument("--probe", default="", help="layers of the frozen probe, comma-separated (none by default)")
    parser.add_argument("--config", default="{}", help="TrainConfig fields as JSON, e.g. '{\"learning_rate\": 1e-3}'")
    args = parser.parse_args()
    norms = load_norms("embedded")
    # random samples with word families kept on one side, as a job draws them
    train_words, val_words, test_words = draw_sides(
        norms.words,
        test_fraction=0.4,
        seed=args.seed,
        n_train=args.train_words,
        n_validation=args.val_words,
        n_test=args.test_words,
    )
    test_norms = norms.select(test_words)
    val_norms = norms.select(val_words)
    values = {"format": args.objective, "seed": args.seed, "engine": "torch", **json.loads(args.config)}
    out = Path(args.out or f"results/curves/{args.tag}.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    lm = load_model("smollm2-135m")
    model, tokenizer = lm.model, lm.tokenizer
    rows = []
    if args.probe:  # before training: LoRA is injected into ``model`` in place
        for row in probe_figures(
            model.eval(), tokenizer, norms.select(train_words), test_norms, [int(x) for x in args.probe.split(",")]
        ):
            rows.append({"tag": args.tag, **row})
            print(json.dumps(rows[-1]), flush=True)
    base = held_out_figures(model, tokenizer, val_norms, "rating") if args.objective == "rating" else {}
    rows.append({"tag": args.tag, "step": 0, "split": "validation", **base})
    print(json.dumps(rows[-1]), flush=True)
    total = args.steps
    values["steps"] = total
    cfg = TrainConfig.from_dict(values)
    work = Path("/tmp") / f"curves-{args.tag}"
    losses: list[float] = []
    state = {"t": time.perf_counter()}

    def at_step(step: int, loss: float, ckpt) -> None:
        losses.append(loss)
        if step % args.eval_every and step != total:
            return
        elapsed = time.perf_counter() - state["t"]
        if args.objective == "regression":  # its head is only saved at the end
            return
        model.eval()  # LoRA is injected into ``model`` in place, full fine-tuning trains it
        with torch.no_grad():
            fig = held_out_figures(model, tokenizer, val_norms, args.objective)
        model.train()
        rows.append(
            {
                "tag": args.tag,
                "step": step,
                "split": "validation",
                "train_seconds": round(elapsed, 1),
                "loss": float(np.mean(losses[-20:])),
                **fig,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
        state["t"] = time.perf_counter()

    result = train(
        cfg,
        model,
        tokenizer,
        TaskData(norms={"en": norms.select(train_words)}, seed=args.seed),
        work,
        report=lambda step, loss, ckpt: at_step(step, loss, ckpt),
    )
    head = load_head(result.head_path, model.config.hidden_size, 6) if result.head_path else None
    if head is not None:
        rows.append(
            {
                "tag": args.tag,
                "step": total,
                "split": "validation",
                "train_seconds": round(result.seconds, 1),
                **held_out_figures(model.eval(), tokenizer, val_norms, args.objective, head),
            }
        )
    test = held_out_figures(model.eval(), tokenizer, test_norms, args.objective, head)
    rows.append(
        {
            "tag": args.tag,
            "step": total,
            "split": "test",
            "config": values,
            "train_seconds": round(result.seconds, 1),
            **test,
        }
    )
    print(json.dumps(rows[-1]), flush=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
