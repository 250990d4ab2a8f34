"""Proof, before a bundle is written, that model.pkl read as data answers as scikit-learn does.

The pickle is read as serving reads it (serving/records.py) and built into numpy steps
(serving/scorers/); then both answer the sample's rows and GENERATED_ROWS more, made from the
fields: numbers within the training ranges and beyond them, every category, a value training never
saw, and gaps where a field may be null. The labels must be the same, and the numbers (probabilities,
a regression's values) the same floats bit for bit where every step is elementwise or a tree; where a
step sums products (a linear model's decision, which scikit-learn leaves to BLAS, whose order of
summation depends on the CPU), within LINEAR_RTOL of the batch's largest value (a sum that cancels
to near zero keeps the rounding of its terms, not of its result). A row scikit-learn refuses, the
numpy steps must refuse too. Anything else, and the bundle is served through scikit-learn, saying why.
"""

import numpy as np

from bundling.fields import moments_around
from bundling.probe import quietly
from serving import records, scorers
from serving.fields import MOMENT_TYPES, Schema

GENERATED_ROWS = 10_000
CHUNK = 500  # rows scored at once; a chunk scikit-learn refuses is halved, and halved again, down to the rows it refuses
LINEAR_RTOL = 1e-12
LINEAR_KINDS = ("sklearn.linear_model.", "sklearn.svm.")
NEVER_SEEN = "a value training never saw"


class NotProven(Exception):
    """model.pkl can't be served as data; the message says which step and why."""


def prove(content, pipeline, metadata, sample_rows):
    """What model.json records of the proof, once the numpy steps answer as `pipeline` on the
    sample and the generated rows; else NotProven. `content` is the pickle's bytes, `metadata` the
    model.json to be written."""
    try:
        record = records.read(content, scorers.kinds())
        steps = scorers.build(record)
    except records.RecordError as err:
        raise NotProven(str(err)) from None
    schema = Schema(metadata["fields"])
    rows = [list(row) for row in sample_rows]
    rows += generated_rows(metadata["fields"], GENERATED_ROWS, sample_rows=rows)
    exact = not any(each.kind.startswith(LINEAR_KINDS) for each in records.walk(record))
    for start in range(0, len(rows), CHUNK):
        compare_rows(pipeline, steps, schema, metadata["input"], rows[start:start + CHUNK], exact)
    return {"rows": len(rows), "floats": "bit for bit" if exact else f"within {LINEAR_RTOL:g} of the largest"}


def compare_rows(pipeline, steps, schema, kind, rows, exact):
    """Both answers to `rows` at once, compared; where scikit-learn refuses them, both answers to each
    half, down to each row alone: the numpy form must refuse exactly the rows scikit-learn refuses alone."""
    expected = answers(pipeline, schema.pipeline_input(rows, kind))
    if expected is None and len(rows) > 1:
        middle = len(rows) // 2
        compare_rows(pipeline, steps, schema, kind, rows[:middle], exact)
        compare_rows(pipeline, steps, schema, kind, rows[middle:], exact)
        return
    compare(expected, answers(steps, schema.pipeline_input(rows, "array")), rows, exact)


def answers(predictor, X):
    """(labels, probabilities or None) from a predictor, or None if it refuses X."""
    try:
        if hasattr(predictor, "predict_with_proba"):  # the numpy steps of a classifier, as serving calls them
            return predictor.predict_with_proba(X)
        labels = quietly(predictor.predict, X)
        probabilities = quietly(predictor.predict_proba, X) if hasattr(predictor, "predict_proba") else None
    except (ValueError, TypeError, ArithmeticError):
        return None
    return labels, probabilities


def compare(expected, found, rows, exact):
    if (expected is None) != (found is None):
        which = "scikit-learn refuses" if expected is None else "scikit-learn answers"
        raise NotProven(f"{which} the row {rows[0]!r}, and its numpy form does not")
    if expected is None:
        return
    for name, want, got in (("labels", expected[0], found[0]), ("probabilities", expected[1], found[1])):
        if want is None and got is None:
            continue
        if want is None or got is None or want.shape != got.shape:
            raise NotProven(f"its numpy form gives {name} of another shape")
        if name == "labels" and want.dtype.kind not in "fc":
            same = want.tolist() == got.tolist()
        elif exact:
            same = np.array_equal(want, got, equal_nan=True)
        else:
            largest = float(np.nanmax(np.abs(want), initial=1.0))
            same = np.allclose(got, want, rtol=LINEAR_RTOL, atol=LINEAR_RTOL * largest, equal_nan=True)
        if not same:
            at = first_difference(want, got)
            raise NotProven(f"its numpy form gives other {name} than scikit-learn on {rows[at]!r}")


def first_difference(want, got):
    want, got = np.asarray(want).reshape(len(want), -1), np.asarray(got).reshape(len(got), -1)
    differs = [i for i in range(len(want)) if want[i].tolist() != got[i].tolist()]
    return differs[0] if differs else 0


def generated_rows(fields, count, seed=0, sample_rows=()):
    """`count` rows a caller could send: numbers within the training range, and as far beyond it
    (not below zero where training saw none), integers as integers, every category and one training
    never saw (where the pipeline ignores those), texts of the sample's words and others, and a gap
    where a field may be null."""
    rng = np.random.default_rng(seed)
    columns = [field_values(field, count, rng, [row[i] for row in sample_rows]) for i, field in enumerate(fields)]
    return [list(row) for row in zip(*columns)]


# Words no training text may hold, and what else a caller's text may differ by: capitals, accents
# and ligatures, digits, punctuation, other scripts, apostrophes and hyphens, nothing at all.
UNSEEN_WORDS = ["zyzzyva", "QUIXOTIC", "Ünïcödé", "naïve", "ﬁnancial", "Straße", "42", "3.14", "!!!", "東京", "don't",
                "e-mail", "", "\t"]
MAX_WORDS = 40


def made_up_texts(sample_texts, count, rng):
    """`count` texts of up to MAX_WORDS words, drawn from the words of the sample's texts and UNSEEN_WORDS."""
    words = sorted({word for text in sample_texts if type(text) is str for word in text.split()}) + UNSEEN_WORDS
    picks = [rng.integers(0, len(words), length).tolist() for length in rng.integers(0, MAX_WORDS, count).tolist()]
    texts = [" ".join(words[i] for i in chosen) for chosen in picks]
    return [text.upper() if shout else text for text, shout in zip(texts, (rng.random(count) < 0.1).tolist())]


def field_values(field, count, rng, sample_values=()):
    if field["type"] == "text":
        values = made_up_texts(sample_values, count, rng)
    elif "categories" in field:
        choices = list(field["categories"])
        if field.get("unknown_categories") == "ignore" and field["type"] != "boolean":
            choices.append(never_seen(field))
        values = [choices[i] for i in rng.integers(0, len(choices), count)]
    elif field["type"] in MOMENT_TYPES:
        values = moments_around(field, count, rng)
    else:
        low, high = field.get("range", [-1.0, 1.0])
        span = (high - low) or 1.0
        floor = 0.0 if low >= 0 else low - span
        numbers = rng.uniform(floor, high + span, count)
        values = [round(v) for v in numbers.tolist()] if field["type"] == "integer" else numbers.tolist()
    if field["nullable"]:
        values = [None if gap else value for value, gap in zip(values, rng.random(count) < 0.1)]
    return values


def never_seen(field):
    return NEVER_SEEN if field["type"] == "string" else max(field["categories"]) + 1
