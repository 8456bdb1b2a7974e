"""Metrics: plain numpy/scipy, no orchestration. Each concept has one registry:
correlations (:data:`CORRELATIONS`), RDM distances (:data:`RDM_METHODS`), feature
standardisations (:data:`STANDARDISERS`), RDM comparisons (:data:`COMPARISONS`) and RSA
recipes (:data:`RECIPES`)."""

from embodiment.metrics.compare import COMPARISONS, compare, get_comparison
from embodiment.metrics.correlation import (
    CORRELATIONS,
    Correlation,
    bootstrap_ci,
    correlate,
    mean_correlation,
    per_dimension,
)
from embodiment.metrics.multiple import holm
from embodiment.metrics.paired import Difference, mean_spearman_of, paired_difference, paired_differences
from embodiment.metrics.proportion import Proportion, proportion
from embodiment.metrics.rdm import RDM_METHODS, STANDARDISERS, condensed_rdm
from embodiment.metrics.rsa import RECIPES, STUDY_RECIPE, RSARecipe, RSAResult, get_recipe, rsa, rsa_by_subset
from embodiment.metrics.rsa_bootstrap import ResampledRSA
from embodiment.metrics.steiger import SteigerTest, steiger_z
from embodiment.metrics.transfer import transfer_rows
from embodiment.metrics.wordwise import wordwise_similarity

__all__ = [
    "COMPARISONS",
    "CORRELATIONS",
    "Correlation",
    "Difference",
    "Proportion",
    "RDM_METHODS",
    "RECIPES",
    "RSARecipe",
    "RSAResult",
    "ResampledRSA",
    "STANDARDISERS",
    "STUDY_RECIPE",
    "SteigerTest",
    "bootstrap_ci",
    "compare",
    "condensed_rdm",
    "correlate",
    "get_comparison",
    "get_recipe",
    "holm",
    "mean_correlation",
    "paired_difference",
    "paired_differences",
    "mean_spearman_of",
    "per_dimension",
    "proportion",
    "rsa",
    "rsa_by_subset",
    "steiger_z",
    "transfer_rows",
    "wordwise_similarity",
]
