"""Question-answering metrics: exact match and token F1 after SQuAD's answer normalisation.

The normalisation is SQuAD's standard (v1.1 evaluation script): lower-case, drop ASCII punctuation, drop the
articles "a", "an" and "the", and collapse whitespace. So "The Titan IIIE." and "titan iiie" match exactly.
"""

from __future__ import annotations

import re
import string
from collections import Counter

_PUNCTUATION = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower-case, no punctuation, no articles, single spaces."""
    if not isinstance(text, str):
        return ""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


def exact_match(prediction: str | None, answer: str) -> float:
    """1.0 if the prediction equals the answer after normalisation, else 0.0 (None or a non-string: 0.0)."""
    if not isinstance(prediction, str):
        return 0.0
    return float(normalize_answer(prediction) == normalize_answer(answer))


def f1_score(prediction: str | None, answer: str) -> float:
    """Token F1 of the normalised prediction against the normalised answer (None or a non-string: 0.0).

    When either side has no tokens left, F1 is their exact match (SQuAD v2's rule; v1.1 gave 0 even for two
    empty strings)."""
    if not isinstance(prediction, str):
        return 0.0
    predicted, gold = normalize_answer(prediction).split(), normalize_answer(answer).split()
    if not predicted or not gold:
        return float(predicted == gold)
    common = sum((Counter(predicted) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(gold)
    return 2 * precision * recall / (precision + recall)
