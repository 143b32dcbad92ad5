import pytest

from nasfer.labels import EMOTIONS, canonical_index, canonical_name, is_known


def test_canonical_order_is_fer2013():
    assert EMOTIONS == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


@pytest.mark.parametrize("raw,expected", [
    ("Anger", "angry"), ("SADNESS", "sad"), (" happiness ", "happy"), ("Surprised", "surprise"),
    ("fearful", "fear"), ("disgust", "disgust"), ("Neutral", "neutral"),
])
def test_synonyms_case_insensitive(raw, expected):
    assert canonical_name(raw) == expected
    assert canonical_index(raw) == EMOTIONS.index(expected)


def test_contempt_excluded_by_default_and_mappable():
    assert canonical_name("contempt") is None
    assert canonical_index("Contempt") is None
    assert canonical_name("contempt", contempt="neutral") == "neutral"
    assert is_known("contempt")


def test_unknown_label_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown emotion class 'bored'"):
        canonical_name("bored")
    with pytest.raises(ValueError, match="contempt policy"):
        canonical_name("contempt", contempt="drop")  # type: ignore[arg-type]


def test_one_rule_chooses_how_a_dataset_is_read_for_a_model():
    """evaluate and export --quantize chose the label set each in its own way (quantize ignored the CSV case)."""
    from nasfer.labels import reading_label_set

    assert reading_label_set(("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")) == "canonical"
    assert reading_label_set(("Happiness", "sadness")) == "canonical"  # synonyms count as canonical
    assert reading_label_set(("cat", "dog")) == "folders"
    assert reading_label_set(("cat", "dog"), "fer2013-csv") == "canonical"  # a CSV has only the seven
