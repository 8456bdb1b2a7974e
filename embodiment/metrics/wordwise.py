"""Word-wise similarity between a model's and the human rating vector of each concept."""

from __future__ import annotations

import numpy as np


def wordwise_similarity(model: np.ndarray, human: np.ndarray) -> np.ndarray:
    """1 / (1 + Euclidean distance) between the rating vectors of each concept.

    Args:
        model: (n, d) model ratings.
        human: (n, d) human ratings of the same concepts and dimensions.

    Returns:
        (n,) similarities in (0, 1]; NaN for a concept with a missing rating.
    """
    model = np.asarray(model, dtype=np.float64)
    human = np.asarray(human, dtype=np.float64)
    if model.shape != human.shape:
        raise ValueError(f"shapes differ: {model.shape} vs {human.shape}")
    return 1.0 / (1.0 + np.sqrt(((model - human) ** 2).sum(axis=1)))
