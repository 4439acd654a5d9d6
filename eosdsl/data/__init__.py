"""Datasets and data fingerprints."""

from __future__ import annotations

from eosdsl.data.fingerprint import array_fingerprint
from eosdsl.data.sparse_regression import (
    SparseRegression,
    make_sparse_regression,
    min_l1_interpolator,
    min_l2_interpolator,
    population_risk,
)

__all__ = [
    "SparseRegression",
    "array_fingerprint",
    "make_sparse_regression",
    "min_l1_interpolator",
    "min_l2_interpolator",
    "population_risk",
]
