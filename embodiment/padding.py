"""Padding token id lists into batches: the one place that builds ids and attention masks."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def _pad(seqs: Sequence[Sequence[int]], pad_id: int, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        cols = slice(width - len(s), width) if left else slice(0, len(s))
        ids[i, cols] = torch.tensor(list(s), dtype=torch.long)
        mask[i, cols] = 1
    return ids, mask


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token id lists: every row's last token sits in the last column, so the LM
    head can run on one position per row (``logits_to_keep=1``).

    Returns:
        (input_ids, attention_mask), both (rows, longest) long tensors.
    """
    return _pad(seqs, pad_id, left=True)


def right_pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token id lists (positions stay 0..n-1 without explicit position ids).

    Returns:
        (input_ids, attention_mask), both (rows, longest) long tensors.
    """
    return _pad(seqs, pad_id, left=False)


def positions(mask: torch.Tensor, offset: torch.Tensor | int = 0) -> torch.Tensor:
    """Position ids that skip left padding: each real token gets the position it would have
    unpadded, counted from ``offset`` (a scalar, or one per row: the length of the prefix
    each row continues), so padding never changes a score.
    """
    start = offset[:, None] if torch.is_tensor(offset) else offset
    return (start + mask.cumsum(1) - 1).clamp(min=0 if torch.is_tensor(offset) else offset)
