"""Datasets and data fingerprints.

- :mod:`~eosdsl.data.dataset`: the fingerprinted :class:`Dataset` container.
- :mod:`~eosdsl.data.synthetic`: seeded generators (rank-2, Gaussian spectrum, mixture, teacher–student,
  random labels).
- :mod:`~eosdsl.data.images`: Fashion-MNIST (IDX) and CIFAR-10 (python batches, restricted unpickler).
- :mod:`~eosdsl.data.preprocess`: pure preprocessing steps and ``pipeline``.
- :mod:`~eosdsl.data.sparse_regression`: the sparse-regression problem of paper 000.
"""

from __future__ import annotations

from eosdsl.data.dataset import TARGET_ENCODINGS, Dataset, make_dataset
from eosdsl.data.fingerprint import array_fingerprint
from eosdsl.data.images import (
    CIFAR10_CLASSES,
    CIFAR10_FILES,
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DEFAULT_DIR,
    FASHION_MNIST_FILES,
    CifarFormatError,
    DataFormatError,
    DatasetNotFoundError,
    IDXFormatError,
    RestrictedUnpickler,
    UnsafePickleError,
    fashion_mnist_available,
    idx_dims,
    load_cifar10,
    load_fashion_mnist,
    load_mnist_format,
    read_cifar10_batch,
    read_idx,
    safe_load_pickle,
    write_idx,
)
from eosdsl.data.preprocess import (
    STEPS,
    balanced,
    center,
    filter_classes,
    flatten,
    holdout,
    one_hot,
    one_hot_zero_mean,
    pad,
    pipeline,
    plus_minus_one,
    scale,
    standardize,
    take_first,
    to_channels,
)
from eosdsl.data.sparse_regression import (
    SparseRegression,
    make_sparse_regression,
    min_l1_interpolator,
    min_l2_interpolator,
    population_risk,
)
from eosdsl.data.synthetic import (
    ACTIVATIONS,
    gaussian_mixture,
    gaussian_spectrum_binary,
    random_labels,
    rank2,
    resolve_spectrum,
    teacher_student,
)

__all__ = [
    "ACTIVATIONS",
    "CIFAR10_CLASSES",
    "CIFAR10_FILES",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DEFAULT_DIR",
    "FASHION_MNIST_FILES",
    "STEPS",
    "TARGET_ENCODINGS",
    "Dataset",
    "DatasetNotFoundError",
    "CifarFormatError",
    "DataFormatError",
    "IDXFormatError",
    "RestrictedUnpickler",
    "SparseRegression",
    "UnsafePickleError",
    "array_fingerprint",
    "balanced",
    "center",
    "fashion_mnist_available",
    "filter_classes",
    "flatten",
    "gaussian_mixture",
    "gaussian_spectrum_binary",
    "holdout",
    "idx_dims",
    "load_cifar10",
    "load_fashion_mnist",
    "load_mnist_format",
    "make_dataset",
    "make_sparse_regression",
    "min_l1_interpolator",
    "min_l2_interpolator",
    "one_hot",
    "one_hot_zero_mean",
    "pad",
    "pipeline",
    "plus_minus_one",
    "population_risk",
    "random_labels",
    "rank2",
    "read_cifar10_batch",
    "read_idx",
    "resolve_spectrum",
    "safe_load_pickle",
    "scale",
    "standardize",
    "take_first",
    "teacher_student",
    "to_channels",
    "write_idx",
]
