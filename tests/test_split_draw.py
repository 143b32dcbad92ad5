"""Which test split a run has: the dataset's own, or one held out for it."""

from __future__ import annotations

import numpy as np

from nasfer.data.splits import draw_split


def test_train_and_val_folders_without_a_test_folder_get_a_test_split_held_out():
    """User review: train/ and val/ folders but no test/ trained without any test images (no test.json) and
    said nothing, though the README says that a dataset without a test split of its own gets 10% of each class
    held out as test."""
    labels = np.array([0, 1] * 10 + [0, 1] * 2)
    official = np.array(["train"] * 20 + ["val"] * 4)
    roles = draw_split(labels, official == "train", official, val_fraction=0.3, test_fraction=0.2)
    assert roles[20:].tolist() == ["val"] * 4  # the val/ folder stays the validation split
    assert (roles[:20] == "test").sum() == 4 and (roles[:20] == "train").sum() == 16
    assert set(labels[:20][roles[:20] == "test"].tolist()) == {0, 1}  # stratified


def test_a_test_folder_is_the_test_split_as_it_is():
    labels = np.array([0, 1] * 12)
    official = np.array(["train"] * 16 + ["val"] * 4 + ["test"] * 4)
    roles = draw_split(labels, official == "train", official, val_fraction=0.3, test_fraction=0.2)
    assert roles.tolist() == ["train"] * 16 + ["val"] * 4 + ["test"] * 4
