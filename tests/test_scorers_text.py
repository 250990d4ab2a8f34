"""The text scorers (serving/scorers/text.py, sparse.py) against scikit-learn's own vectorizers and
the models after them: the same stored entries in the same order with the same floats, and the
same labels and probabilities bit for bit (np.array_equal), a document alone as in a batch.

The corpus is the standard library's own prose: the docstrings of the methods of Python's built-in
types, labelled by the type that documents them. Requests add what a caller may send: words never
seen, empty strings, upper case, accents (letters named through unicodedata), numbers, punctuation.
"""

import unicodedata

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.ensemble import ExtraTreesRegressor, GradientBoostingClassifier, RandomForestClassifier
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS as SKLEARN_ENGLISH_STOP_WORDS
from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer, TfidfTransformer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression, Ridge, SGDClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler, normalize
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils import murmurhash3_32 as sklearn_murmurhash3_32

from serving.records import Record, RecordError
from serving.scorers import build
from serving.scorers.sparse import SparseRows
from serving.scorers.stop_words import ENGLISH_STOP_WORDS
from serving.scorers.text import murmurhash3_32

from conftest import as_record, served

SETTINGS = settings(max_examples=15, deadline=None, derandomize=True)
FEW = settings(max_examples=4, deadline=None, derandomize=True)
DOCUMENTED_TYPES = (str, list, dict, set, int, float, bytes)


def letter(name):
    return unicodedata.lookup(name)


# Letters whose lower case, accents or compatibility forms are not one plain ASCII letter.
ACCENTED = "".join(letter(name) for name in (
    "LATIN SMALL LETTER E WITH ACUTE", "LATIN CAPITAL LETTER E WITH GRAVE", "LATIN SMALL LETTER A WITH DIAERESIS",
    "LATIN CAPITAL LETTER AE", "LATIN SMALL LETTER SHARP S", "LATIN SMALL LIGATURE FI", "COMBINING ACUTE ACCENT",
    "LATIN CAPITAL LETTER I WITH DOT ABOVE", "GREEK CAPITAL LETTER SIGMA", "LATIN SMALL LETTER O WITH STROKE",
    "LATIN CAPITAL LETTER C WITH CEDILLA", "FULLWIDTH DIGIT SEVEN"))


def corpus():
    """(docstrings, the type documenting each): each docstring once, from the first type that has it."""
    documents, labels = {}, {}
    for kind in DOCUMENTED_TYPES:
        for name, value in sorted(vars(kind).items()):
            doc = getattr(value, "__doc__", None) if callable(value) else None
            if isinstance(doc, str) and doc.strip() and doc not in documents:
                documents[doc], labels[doc] = name, kind.__name__
    texts = list(documents)
    return np.array(texts, dtype=object), np.array([labels[text] for text in texts], dtype=object)


DOCUMENTS, LABELS = corpus()
WORDS = sorted({word for text in DOCUMENTS for word in text.split()})


def accented(text):
    """The text with each vowel's first occurrence given an accent, and its first word in capitals."""
    for plain, name in (("e", "LATIN SMALL LETTER E WITH ACUTE"), ("a", "LATIN SMALL LETTER A WITH GRAVE"),
                        ("o", "LATIN SMALL LETTER O WITH DIAERESIS")):
        text = text.replace(plain, letter(name), 1)
    first, _, rest = text.partition(" ")
    return f"{first.upper()} {rest}"


TRAINING = np.concatenate([DOCUMENTS, [accented(text) for text in DOCUMENTS[::5]]]).astype(object)
TRAINING_LABELS = np.concatenate([LABELS, LABELS[::5]]).astype(object)
REQUESTS = np.array([
    "", " ", "Return a copy of the string with its first character capitalized.",
    "RETURN THE NUMBER OF ITEMS 42 TIMES, 3.14 AND -7", "words nobody ever fitted: zyzzyva quokka",
    accented("Return a new set with elements common to the set and all others."), ACCENTED, f"caf{ACCENTED} x{ACCENTED}y",
    "S.split(sep=None, maxsplit=-1) -> list of strings!!! ;-) [...]", "tab\tseparated\nnew line  double  space",
    "the the the the of of of a a", "\N{GRINNING FACE} emoji and \N{SNOWMAN}",
], dtype=object)


@st.composite
def requests(draw):
    """Documents of corpus words, accented letters, digits and punctuation, or any text."""
    words = st.one_of(st.sampled_from(WORDS), st.text(alphabet=ACCENTED + "abcXYZ0123456789_'-", max_size=8),
                      st.sampled_from(["NaN", "None", "0", "ß", "İstanbul", "über", "naïve", "résumé"]))
    separators = st.sampled_from([" ", ", ", ". ", "\n", "  ", "-", "/", ""])
    document = st.one_of(
        st.lists(st.tuples(words, separators), max_size=30).map(lambda pairs: "".join(w + s for w, s in pairs)),
        st.text(max_size=40))
    return np.array(draw(st.lists(document, min_size=1, max_size=8)), dtype=object)


def sklearn_rows(vectorizer, documents):
    """scikit-learn's transform (of the last step, for a pipeline of text steps) as a CSR array."""
    return sp.csr_array(vectorizer.transform(documents))


def assert_same_rows(ours, theirs):
    """The same CSR matrix: the same stored entries (stored zeros too), in the same order, the same floats."""
    assert isinstance(ours, SparseRows) and ours.shape == theirs.shape
    assert np.array_equal(ours.indptr, theirs.indptr)
    assert np.array_equal(ours.indices, theirs.indices)
    assert ours.data.dtype == np.float64
    assert np.array_equal(ours.data, theirs.data.astype(np.float64), equal_nan=True)


def assert_transforms_alike(vectorizer, documents):
    step = served(vectorizer)
    batch = step.transform(documents)
    assert_same_rows(batch, sklearn_rows(vectorizer, documents))
    for row in range(0, len(documents), 3):
        alone = step.transform(documents[row:row + 1])
        start, stop = batch.indptr[row], batch.indptr[row + 1]
        assert np.array_equal(alone.indices, batch.indices[start:stop])
        assert np.array_equal(alone.data, batch.data[start:stop], equal_nan=True)
    return step


def assert_answers_alike(model, step, rows, theirs=None, rows_alone=6):
    """predict and predict_proba (or predict for a regressor) equal to scikit-learn's bit for bit, on the
    batch and on rows alone; `theirs` is what scikit-learn is given (a DataFrame, say) when it differs."""
    theirs = rows if theirs is None else theirs
    methods = ["predict", "predict_proba"] if hasattr(model, "predict_proba") else ["predict"]
    for method in methods:
        ours, expected = getattr(step, method)(rows), getattr(model, method)(theirs)
        assert ours.dtype == expected.dtype and np.array_equal(ours, expected), method
        for row in np.linspace(0, len(rows) - 1, rows_alone).astype(int):
            alone = getattr(step, method)(rows[row:row + 1])
            assert np.array_equal(alone, ours[row:row + 1]), (method, row)
            assert np.array_equal(alone, getattr(model, method)(theirs[row:row + 1])), (method, row)
    if hasattr(step, "predict_with_proba"):
        labels, probabilities = step.predict_with_proba(rows)
        assert np.array_equal(labels, model.predict(theirs)) and np.array_equal(probabilities, model.predict_proba(theirs))


@SETTINGS
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_murmurhash3_32_is_scikit_learns(text):
    assert murmurhash3_32(text.encode("utf-8")) == sklearn_murmurhash3_32(text, seed=0)


def test_sparse_rows_sum_and_stack_as_scipy_does():
    """Rows of values of very different sizes, where the order of adding shows: a row times coefficients
    as scipy's csr @ dense, row norms as sklearn's normalize, blocks side by side as sparse.hstack."""
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(30, 40)) * 10.0 ** rng.integers(-8, 9, size=(30, 40))
    dense[rng.random(dense.shape) < 0.6] = 0.0
    dense[3] = 0.0  # an empty row
    dense[4, :4] = [1e16, 1.0, -1e16, 1.0]
    coef = rng.normal(size=(3, 40)) * 10.0 ** rng.integers(-4, 5, size=(3, 40))
    rows = SparseRows.from_dense(dense)
    assert np.array_equal(rows.dot_rows(coef), sp.csr_array(dense) @ coef.T)
    assert np.array_equal(rows.dot_rows(coef[:1])[:, 0], sp.csr_array(dense) @ coef[0])
    from serving.scorers.text import normalized
    for norm in ("l1", "l2"):
        assert np.array_equal(normalized(rows, norm, "test").toarray(), normalize(sp.csr_array(dense), norm=norm).toarray())
    other = dense[:, ::-1] * 3.0
    stacked = SparseRows.hstack([rows, SparseRows.from_dense(other), rows * 0.5])
    assert_same_rows(stacked, sp.hstack([sp.csr_array(dense), other, sp.csr_array(dense) * 0.5]).tocsr())
    assert np.array_equal(rows.columns(np.array([0, 2, 39])), dense[:, [0, 2, 39]])


VECTORIZERS = [
    lambda: CountVectorizer(),
    lambda: CountVectorizer(binary=True, lowercase=False, dtype=np.float64),
    lambda: CountVectorizer(ngram_range=(1, 3), stop_words=["the", "of", "a", "to", "is"]),
    lambda: CountVectorizer(strip_accents="ascii", max_features=60, dtype=np.int32),
    lambda: CountVectorizer(token_pattern=r"(?u)\b\w+\b", min_df=2, ngram_range=(2, 2)),
    lambda: CountVectorizer(token_pattern=r"(?u)\b(\w)\w*", stop_words=["s", "r"]),
    lambda: CountVectorizer(stop_words="english", max_df=0.3),
    lambda: CountVectorizer(vocabulary=["return", "the", "string", "é", "copy of", "caf"], ngram_range=(1, 2)),
    lambda: TfidfVectorizer(),
    lambda: TfidfVectorizer(sublinear_tf=True, norm="l1", strip_accents="unicode"),
    lambda: TfidfVectorizer(use_idf=False, norm=None, ngram_range=(1, 2)),
    lambda: TfidfVectorizer(smooth_idf=False, binary=True, lowercase=False, strip_accents="unicode"),
    lambda: TfidfVectorizer(stop_words="english", sublinear_tf=True, min_df=2),
    # scikit-learn's English list where it changes the result (serving/scorers/stop_words.py)
    lambda: TfidfVectorizer(stop_words="english", ngram_range=(1, 2)),
    lambda: CountVectorizer(stop_words="english", vocabulary=["return", "string", "the", "copy of", "return the"], ngram_range=(1, 2)),
    lambda: HashingVectorizer(n_features=2**10, stop_words="english", ngram_range=(1, 3)),
    lambda: HashingVectorizer(n_features=2**10),
    lambda: HashingVectorizer(n_features=64, alternate_sign=False, norm="l1", ngram_range=(1, 2)),
    lambda: HashingVectorizer(n_features=8, norm=None),  # collisions: tokens of opposite signs sum to a stored 0
    lambda: HashingVectorizer(n_features=8, norm="l2", binary=True, strip_accents="ascii"),
    lambda: HashingVectorizer(n_features=2**12, stop_words=["the", "of"], lowercase=False),
    lambda: make_pipeline(CountVectorizer(ngram_range=(1, 2)), TfidfTransformer(sublinear_tf=True, norm="l1")),
    lambda: make_pipeline(HashingVectorizer(n_features=32, norm=None), TfidfTransformer()),
]
# Signed hashed counts and a stored 0 through sublinear tf: log gives NaN and -inf, in scikit-learn too
# (which no model can then be fitted on).
TRANSFORMS_ONLY = [
    lambda: make_pipeline(HashingVectorizer(n_features=16, norm=None), TfidfTransformer(sublinear_tf=True, norm=None)),
]


@pytest.mark.filterwarnings("ignore:divide by zero encountered in log", "ignore:invalid value encountered in log")
@pytest.mark.parametrize("which", range(len(VECTORIZERS + TRANSFORMS_ONLY)))
@FEW
@given(requests())
def test_vectorizers_bit_equal(which, documents):
    vectorizer = (VECTORIZERS + TRANSFORMS_ONLY)[which]().fit(TRAINING)
    assert_transforms_alike(vectorizer, TRAINING)
    assert_transforms_alike(vectorizer, REQUESTS)
    assert_transforms_alike(vectorizer, documents)


def test_the_english_stop_words_are_scikit_learns():
    assert ENGLISH_STOP_WORDS == SKLEARN_ENGLISH_STOP_WORDS


def test_a_document_is_a_string():
    """np.nan is refused as scikit-learn refuses it; None or a number too (scikit-learn fails on them
    with other errors); a 2-D array of one column is read as its column, a bare string refused."""
    vectorizer = TfidfVectorizer().fit(TRAINING)
    step = served(vectorizer)
    with pytest.raises(ValueError, match="np.nan is an invalid document"):
        vectorizer.transform(["text", np.nan])
    with pytest.raises(ValueError, match="TfidfVectorizer: np.nan is an invalid document"):
        step.transform(np.array(["text", np.nan], dtype=object))
    for value in (None, 3, 2.5, b"bytes"):
        with pytest.raises(ValueError, match="is an invalid document"):
            step.transform(np.array(["text", value], dtype=object))
    with pytest.raises(ValueError, match="string object received"):
        step.transform("one string")
    assert_same_rows(step.transform(REQUESTS.reshape(-1, 1)), sklearn_rows(vectorizer, REQUESTS))
    assert_same_rows(step.transform(list(REQUESTS)), sklearn_rows(vectorizer, REQUESTS))
    assert step.takes_documents and step.n_features_in == 1


CLASSIFIERS = [
    lambda: LogisticRegression(max_iter=500),
    lambda: LogisticRegression(C=50.0, max_iter=500),
    lambda: SGDClassifier(loss="log_loss", random_state=0),
    lambda: LinearSVC(),
    lambda: RandomForestClassifier(n_estimators=15, random_state=0),
    lambda: DecisionTreeClassifier(random_state=0),
]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("which_classifier", range(len(CLASSIFIERS)))
@SETTINGS
@given(st.sampled_from(range(len(VECTORIZERS))), st.booleans(), requests())
def test_text_classifiers_bit_equal(which_classifier, which_vectorizer, binary, documents):
    labels = np.where(TRAINING_LABELS == "str", "str", "other") if binary else TRAINING_LABELS
    model = make_pipeline(VECTORIZERS[which_vectorizer](), CLASSIFIERS[which_classifier]()).fit(TRAINING, labels)
    step = served(model)
    assert step.takes_documents and step.n_features_in == 1 and np.array_equal(step.classes, model.classes_)
    for rows in (TRAINING, REQUESTS, documents):
        assert_answers_alike(model, step, rows)


def test_a_notebooks_text_classifier_fitted_on_a_series():
    """make_pipeline(TfidfVectorizer(), LogisticRegression()) fitted on a column of a DataFrame, served
    one text field: the rows as a 2-D array of one column, as serving hands a table's rows."""
    table = pd.DataFrame({"docstring": TRAINING, "type": TRAINING_LABELS})
    model = make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=2000)).fit(table["docstring"], table["type"])
    step = served(model)
    requests_table = pd.Series(REQUESTS, name="docstring")
    assert_answers_alike(model, step, REQUESTS.reshape(-1, 1), theirs=requests_table)
    assert_answers_alike(model, step, table[["docstring"]].to_numpy(), theirs=table["docstring"])


def test_text_regressors_bit_equal():
    lengths = np.array([len(text.split()) for text in TRAINING], dtype=float)
    for model in (make_pipeline(TfidfVectorizer(sublinear_tf=True), Ridge(alpha=0.5)),
                  make_pipeline(HashingVectorizer(), Ridge()),
                  make_pipeline(CountVectorizer(min_df=3), ExtraTreesRegressor(n_estimators=8, random_state=0)),
                  TransformedTargetRegressor(make_pipeline(TfidfVectorizer(), Ridge()), func=np.log1p,
                                             inverse_func=np.expm1)):
        model.fit(TRAINING, lengths)
        step = served(model)
        assert step.takes_documents and step.n_features_in == 1
        assert_answers_alike(model, step, np.concatenate([TRAINING, REQUESTS]))


def docstring_table():
    """The corpus as a table of a text column, a categorical column and numeric ones."""
    return pd.DataFrame({
        "docstring": TRAINING,
        "kind": ["dunder" if text.lstrip().startswith("Return self") else "method" for text in TRAINING],
        "words": [len(text.split()) for text in TRAINING],
        "lines": [text.count("\n") + 1.0 for text in TRAINING],
    })


def notebook_text_model(classifier, text_column="docstring", **column_transformer):
    return make_pipeline(ColumnTransformer([
        ("text", TfidfVectorizer(ngram_range=(1, 2), min_df=2), text_column),
        ("kind", OneHotEncoder(handle_unknown="ignore"), ["kind"]),
        ("size", StandardScaler(), ["words", "lines"]),
    ], **column_transformer), classifier)


@pytest.mark.parametrize("classifier", [
    lambda: LogisticRegression(max_iter=3000), lambda: RandomForestClassifier(n_estimators=20, random_state=0)])
@pytest.mark.parametrize("sparse_threshold", [0.3, 0.0])
def test_a_text_column_beside_others_in_a_column_transformer(classifier, sparse_threshold):
    """A text column selected by name beside a one-hot and a scaled column: sparse output (the text
    makes it sparse) into a linear model or a forest; or dense output, where a linear model's BLAS sum
    is not scipy's (within 1e-12 then) and a forest's the same."""
    table = docstring_table()
    model = notebook_text_model(classifier(), sparse_threshold=sparse_threshold).fit(table, TRAINING_LABELS)
    assert model[0].sparse_output_ == (sparse_threshold > 0)
    step = served(model)
    assert step.n_features_in == 4 and not getattr(step, "takes_documents", False)
    unusual = pd.DataFrame({"docstring": REQUESTS, "kind": ["dunder", "method", "unseen"] * 4,
                            "words": np.arange(12) * 40.0 - 3, "lines": np.arange(12) + 0.5})
    for rows in (table, unusual):
        if sparse_threshold or isinstance(model[-1], RandomForestClassifier):
            assert_answers_alike(model, step, rows.to_numpy(dtype=object), theirs=rows)
        else:
            assert np.array_equal(step.predict(rows.to_numpy(dtype=object)), model.predict(rows))
            assert np.allclose(step.predict_proba(rows.to_numpy(dtype=object)), model.predict_proba(rows),
                               rtol=1e-12, atol=1e-14)


def test_a_text_column_by_index_and_with_weights():
    table = docstring_table()
    rows = table.to_numpy(dtype=object)
    layout = ColumnTransformer([("text", HashingVectorizer(n_features=2**8), 0), ("size", "passthrough", [2, 3])],
                               transformer_weights={"text": 3.0, "size": 0.25}, sparse_threshold=1.0)
    model = make_pipeline(layout, LogisticRegression(max_iter=3000)).fit(rows, TRAINING_LABELS)
    assert_answers_alike(model, served(model), rows)
    requests = np.array([[text, "method", 3, 1.0] for text in REQUESTS], dtype=object)
    assert_answers_alike(model, served(model), requests)
    with pytest.raises(ValueError, match="np.nan is an invalid document"):
        served(model).predict(np.array([[np.nan, "method", 3, 1.0]], dtype=object))


def fitted_record(estimator, **changes):
    some, labels = TRAINING[::4], TRAINING_LABELS[::4]
    record = as_record(estimator.fit(some, labels) if hasattr(estimator, "steps") else estimator.fit(some))
    record.state.update(changes)
    return record


def refused(record, message):
    with pytest.raises(RecordError, match=message):
        build(record)


def test_refuses_options_not_served():
    """Each option that needs what the pickle doesn't hold, or computes otherwise, in one line."""
    refused(fitted_record(TfidfVectorizer(analyzer="char_wb")),
            r"^it holds a TfidfVectorizer with analyzer='char_wb', which is not served as data$")
    refused(fitted_record(CountVectorizer(analyzer="char")), "CountVectorizer with analyzer='char'")
    refused(fitted_record(TfidfVectorizer(dtype=np.float32)), "TfidfVectorizer with dtype='float32'")
    refused(fitted_record(CountVectorizer(dtype=np.float32)), "CountVectorizer with dtype='float32'")
    refused(fitted_record(CountVectorizer(), input="filename"), "CountVectorizer with input='filename'")
    refused(fitted_record(CountVectorizer(), stop_words="german"), "CountVectorizer with stop_words='german'")
    refused(fitted_record(HashingVectorizer(), norm="max"), "HashingVectorizer with norm='max'")
    refused(fitted_record(CountVectorizer(), ngram_range=(0, 2)), r"CountVectorizer with ngram_range=\(0, 2\)")


def test_refuses_a_function_of_ones_own():
    """A tokenizer, preprocessor or accent stripper of one's own is a function: the pickle names it, and
    reading as data stops there; a record standing for one is refused by the vectorizer."""
    with pytest.raises(RecordError, match="test_scorers_text.split_on_spaces, which is not read as data"):
        as_record(CountVectorizer(tokenizer=split_on_spaces, token_pattern=None).fit(TRAINING[:10]))
    function = Record("notebook.split_on_spaces")
    for key in ("tokenizer", "preprocessor", "strip_accents", "analyzer"):
        refused(fitted_record(CountVectorizer(), **{key: function}),
                f"^it holds a CountVectorizer with {key}='notebook.split_on_spaces', which is not served as data$")


def split_on_spaces(text):
    return text.split(" ")


def test_refuses_malformed_records():
    vocabulary = fitted_record(CountVectorizer()).state["vocabulary_"]
    size = len(vocabulary)
    moved = dict(vocabulary, **{next(iter(vocabulary)): size + 2})
    refused(fitted_record(CountVectorizer(), vocabulary_=moved), f"CountVectorizer: vocabulary_: index {size + 2} is "
                                                                f"out of range for {size} terms")
    twice = dict(vocabulary, **{next(iter(vocabulary)): vocabulary[list(vocabulary)[1]]})
    refused(fitted_record(CountVectorizer(), vocabulary_=twice), "CountVectorizer: vocabulary_: an index is given twice")
    refused(fitted_record(CountVectorizer(), vocabulary_={}), "vocabulary_ is not a non-empty dict")
    refused(fitted_record(CountVectorizer(), vocabulary_={3: 0}), "vocabulary_ holds a term that is not a string")
    record = fitted_record(TfidfVectorizer())
    record.state["_tfidf"].state["idf_"] = np.ones(size - 1)
    refused(record, rf"TfidfTransformer: idf_ is \({size - 1},\) but should be \({size}\)")
    record.state["_tfidf"].state["n_features_in_"] = size + 1
    refused(record, f"TfidfVectorizer: its TfidfTransformer has {size + 1} features, not {size}")
    refused(fitted_record(TfidfVectorizer(), _tfidf=Record("sklearn.preprocessing._data.StandardScaler")),
            "TfidfVectorizer: _tfidf is a sklearn.preprocessing._data.StandardScaler, not a TfidfTransformer")
    refused(fitted_record(CountVectorizer(), token_pattern=r"(\w)(\w)"), "has more than 1 capturing group")
    refused(fitted_record(CountVectorizer(), token_pattern=r"(\w"), r"token_pattern '\(\\\\w' is not a regular expression")
    refused(fitted_record(HashingVectorizer(), n_features=2**31), "more than FeatureHasher takes")


def test_refuses_pipelines_that_would_compute_otherwise():
    """Sparse rows only go into a step that reads them as scikit-learn reads its CSR matrix; a vectorizer
    takes documents only as the first step, or from one column of a ColumnTransformer."""
    for after in (StandardScaler(with_mean=False), GradientBoostingClassifier(n_estimators=3)):
        record = fitted_record(make_pipeline(TfidfVectorizer(), after, LogisticRegression()) if isinstance(
            after, StandardScaler) else make_pipeline(TfidfVectorizer(), after))
        refused(record, f"Pipeline: a sparse output goes into a {type(after).__name__}Step")
    record = fitted_record(make_pipeline(TfidfVectorizer(), LogisticRegression()))
    _, vectorizer = record.state["steps"][0]
    record.state["steps"].insert(0, ("first", vectorizer))
    refused(record, "Pipeline: a TfidfVectorizerStep takes documents but comes after another step")
    layout = docstring_table()
    model = notebook_text_model(LogisticRegression(max_iter=200)).fit(layout, TRAINING_LABELS)
    record = as_record(model)
    transformers = record.state["steps"][0][1].state["transformers_"]
    name, text_step, _ = transformers[0]
    transformers[0] = (name, text_step, ["docstring"])
    refused(record, "transformer 'text' takes a column of documents, but its selector \\['docstring'\\] is not one")
    transformers[0] = (name, transformers[2][1], "docstring")
    refused(record, "the scalar column selector 'docstring' gives its transformer 1-D input; served only for a text")
