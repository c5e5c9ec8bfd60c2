"""Datasets by name, and the DataLoader that batches them."""

from tinyspike.data.loader import DataLoader
from tinyspike.data.registry import DATASETS, build_dataset, build_splits

__all__ = ["DataLoader", "DATASETS", "build_dataset", "build_splits"]
