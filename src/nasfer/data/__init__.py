"""Datasets: readers for FER2013 (csv and image folders), CK+48 and any <class>/<image> tree."""

from .dataset import FaceDataset, Skipped
from .readers import READERS, detect_kind, read_dataset
from .splits import stratified_split

__all__ = ["FaceDataset", "Skipped", "READERS", "detect_kind", "read_dataset", "stratified_split"]
