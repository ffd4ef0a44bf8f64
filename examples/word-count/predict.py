"""Word count: a bare Gantry package (no config.yaml, no class), just predict.py.

POST {"text": "the quick brown fox jumps over the lazy dog the end"} and get back the
number of words and how often each one occurs.
"""

import re
from collections import Counter

_WORD = None


def load():
    # Called once when the replica starts, before it reports ready.
    global _WORD
    _WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*", re.UNICODE)


def predict(model_input):
    if not isinstance(model_input, dict) or not isinstance(model_input.get("text"), str):
        raise ValueError('send a JSON object with a "text" string, e.g. {"text": "hello world"}')
    words = [w.lower() for w in _WORD.findall(model_input["text"])]
    counts = Counter(words)
    return {
        "words": len(words),
        "unique_words": len(counts),
        "counts": dict(counts.most_common()),
    }
