"""Text vectorizers: CountVectorizer, TfidfVectorizer, TfidfTransformer and HashingVectorizer, computed
as scikit-learn's sklearn/feature_extraction/text.py does.

A vectorizer takes documents: a 1-D array of strings, or a 2-D array of one column (a table of one
text field, as serving hands its rows). It says so with `takes_documents = True`, and counts as one
input feature (`n_features_in = 1`); a Pipeline that starts with one says the same (compose.py).
A document that is not a string is a ValueError naming it, as scikit-learn's is for np.nan ("np.nan
is an invalid document"; None or a number fail there too, with an AttributeError or TypeError).

Each document is analysed as build_analyzer() does for analyzer='word': lowercase (str.lower),
then accents stripped ('ascii' or 'unicode', the same unicodedata calls as strip_accents_ascii and
strip_accents_unicode), tokens found with the token pattern (any pattern: scikit-learn compiles it
with Python's re and takes findall, as here), stop words removed, word n-grams joined with a space.
Every step is Python's own string handling, so the tokens are scikit-learn's.

Then, as CountVectorizer._count_vocab: each token of the vocabulary counted, columns ascending
(csr sort_indices), binary making each stored count 1. TfidfTransformer.transform: np.log(count) + 1
(sublinear_tf), times idf_ at the column, and the row normalised (l1 or l2, summed in the stored
order: serving/scorers/sparse.py). HashingVectorizer: each token's murmurhash3_32 (seed 0, in pure
Python, as sklearn/utils/murmurhash.pyx computes it on the token's UTF-8 bytes) picks the column,
its sign the sign of the 1 added (alternate_sign); tokens landing on one column are summed (whole
numbers, so exactly in any order), binary makes each stored value 1, then the norm.

The output is SparseRows: `outputs_sparse_rows` tells the next step (compose.py lets only steps
with `accepts_sparse_rows` take it: linear models, trees and forests, TfidfTransformer).

stop_words='english' is scikit-learn's list, which the pickle names but doesn't hold: stop_words.py
holds it, read only where it changes the result (n-grams of two words or more, a vocabulary given by
hand, HashingVectorizer); a vocabulary learned with a stop list holds none of its words, so for
single words the list removes nothing the vocabulary would count.

Refused, in one line naming the class and the option: analyzer 'char' or 'char_wb', a tokenizer,
preprocessor, analyzer or strip_accents of one's own (a function, which the pickle can't give as
data), input 'file' or 'filename', and a dtype whose arithmetic isn't float64's.
"""

import numbers
import re
import struct
import unicodedata

import numpy as np

from serving.records import RecordError
from serving.scorers import Fields, as_float_matrix, is_nan, is_record
from serving.scorers.sparse import SparseRows

PREFIX = "sklearn.feature_extraction.text."
DEFAULT_TOKEN_PATTERN = r"(?u)\b\w\w+\b"
# The dtypes whose values a step here gives exactly as float64 ones: counts are whole numbers.
COUNT_DTYPES = ("float64", "int64", "int32")
WEIGHT_DTYPES = ("float64",)
UINT32 = 0xFFFFFFFF


def not_served(fields, key, value, why=""):
    """The one-line refusal of an option: its class, the option and its value (a function's name)."""
    shown = value.kind if is_record(value) else value
    return RecordError(f"it holds a {fields.class_name} with {key}={shown!r}, which is not served as data{why}")


def strip_accents_unicode(text):
    """sklearn.feature_extraction.text.strip_accents_unicode: NFKD, combining characters dropped."""
    try:
        text.encode("ASCII", errors="strict")
        return text
    except UnicodeEncodeError:
        normalized = unicodedata.normalize("NFKD", text)
        return "".join([character for character in normalized if not unicodedata.combining(character)])


def strip_accents_ascii(text):
    """sklearn.feature_extraction.text.strip_accents_ascii: NFKD, then only its ASCII characters."""
    return unicodedata.normalize("NFKD", text).encode("ASCII", "ignore").decode("ASCII")


ACCENT_STRIPPERS = {None: None, False: None, "ascii": strip_accents_ascii, "unicode": strip_accents_unicode}


def rotate_left(value, bits):
    return ((value << bits) | (value >> (32 - bits))) & UINT32


def murmurhash3_32(data):
    """MurmurHash3_x86_32 of bytes with seed 0, as a signed 32-bit integer: what scikit-learn's
    murmurhash3_bytes_s32 gives (blocks of 4 bytes read little-endian, as on the machines it runs on)."""
    c1, c2 = 0xCC9E2D51, 0x1B873593
    hashed = 0
    n_blocks = len(data) // 4
    for (block,) in struct.iter_unpack("<I", data[:n_blocks * 4]):
        hashed ^= rotate_left((block * c1) & UINT32, 15) * c2 & UINT32
        hashed = (rotate_left(hashed, 13) * 5 + 0xE6546B64) & UINT32
    tail = data[n_blocks * 4:]
    if tail:
        hashed ^= rotate_left((int.from_bytes(tail, "little") * c1) & UINT32, 15) * c2 & UINT32
    hashed ^= len(data) & UINT32
    hashed ^= hashed >> 16
    hashed = (hashed * 0x85EBCA6B) & UINT32
    hashed ^= hashed >> 13
    hashed = (hashed * 0xC2B2AE35) & UINT32
    hashed ^= hashed >> 16
    return hashed - (1 << 32) if hashed & 0x80000000 else hashed


def documents(X, who):
    """The documents of X: a 1-D array (or list) of them, or a 2-D array of one column."""
    if isinstance(X, str):
        raise ValueError(f"{who}: Iterable over raw text documents expected, string object received.")
    if isinstance(X, (list, tuple)):
        X = np.array(X, dtype=object)
    if isinstance(X, np.ndarray) and X.ndim == 2 and X.shape[1] == 1:
        X = X[:, 0]
    if not isinstance(X, np.ndarray) or X.ndim != 1:
        raise ValueError(f"{who}: expected a 1-D array of documents, or a 2-D array of one column")
    return X.tolist()


def check_document(document, who):
    if isinstance(document, str):
        return document
    if is_nan(document):
        raise ValueError(f"{who}: np.nan is an invalid document, expected byte or unicode string.")
    raise ValueError(f"{who}: {type(document).__name__} {document!r:.40} is an invalid document, expected a string.")


def read_dtype(fields, allowed):
    """dtype (numpy's scalar type, as the pickle names it, or a numpy dtype) if one of `allowed`."""
    value = fields.value("dtype")
    dtype = None
    if isinstance(value, type) and issubclass(value, np.generic) or isinstance(value, np.dtype):
        dtype = np.dtype(value)
    if dtype is None or dtype.name not in allowed:
        raise not_served(fields, "dtype", value if dtype is None else dtype.name)


class Analyzer:
    """A vectorizer's build_analyzer() for analyzer='word', read from its state: one document's tokens."""

    def __init__(self, fields, learned_vocabulary):
        self.fields = fields
        for key, served in (("input", "content"), ("analyzer", "word")):
            if not (isinstance(fields.value(key), str) and fields.value(key) == served):
                raise not_served(fields, key, fields.value(key))
        for key in ("preprocessor", "tokenizer"):
            if fields.value(key) is not None:
                raise not_served(fields, key, fields.value(key))
        self.lowercase = fields.boolean("lowercase")
        accents = fields.value("strip_accents")
        if not (accents is None or accents is False or isinstance(accents, str) and accents in ACCENT_STRIPPERS):
            raise not_served(fields, "strip_accents", accents)
        self.strip_accents = ACCENT_STRIPPERS[accents]
        self.tokens = self.read_token_pattern()
        self.min_n, self.max_n = self.read_ngram_range()
        self.stop_words = self.read_stop_words(learned_vocabulary)

    def read_token_pattern(self):
        pattern = self.fields.value("token_pattern")
        if not isinstance(pattern, str):
            raise not_served(self.fields, "token_pattern", pattern)
        try:
            compiled = re.compile(pattern)
        except re.error as error:
            raise self.fields.refuse(f"token_pattern {pattern!r} is not a regular expression ({error})") from None
        if compiled.groups > 1:  # scikit-learn raises then: findall would give tuples
            raise self.fields.refuse(f"token_pattern {pattern!r} has more than 1 capturing group")
        return compiled.findall

    def read_ngram_range(self):
        ngram_range = self.fields.value("ngram_range")
        if not (isinstance(ngram_range, (tuple, list)) and len(ngram_range) == 2 and all(
                isinstance(n, numbers.Integral) and not isinstance(n, bool) for n in ngram_range)
                and 1 <= ngram_range[0] <= ngram_range[1]):
            raise not_served(self.fields, "ngram_range", ngram_range)
        return int(ngram_range[0]), int(ngram_range[1])

    def read_stop_words(self, learned_vocabulary):
        """The stop words as the frozenset _check_stop_list makes, or None: 'english' is scikit-learn's
        list (stop_words.py), or None where the vocabulary already leaves its words out."""
        stop_words = self.fields.value("stop_words")
        if stop_words is None:
            return None
        if isinstance(stop_words, str):
            if stop_words != "english":
                raise not_served(self.fields, "stop_words", stop_words)
            if learned_vocabulary and self.max_n == 1:
                return None  # the vocabulary holds none of its words: removing them changes nothing
            from serving.scorers.stop_words import ENGLISH_STOP_WORDS  # only a bundle that needs the list reads it

            return ENGLISH_STOP_WORDS
        if not isinstance(stop_words, (list, tuple, set, frozenset)):
            raise not_served(self.fields, "stop_words", stop_words)
        try:
            return frozenset(stop_words)
        except TypeError:
            raise self.fields.refuse("stop_words holds an item that can't be a word (it has no hash)") from None

    def __call__(self, document):
        document = check_document(document, self.fields.class_name)
        if self.lowercase:
            document = document.lower()
        if self.strip_accents is not None:
            document = self.strip_accents(document)
        tokens = self.tokens(document)
        if self.stop_words is not None:
            tokens = [token for token in tokens if token not in self.stop_words]
        return self.word_ngrams(tokens)

    def word_ngrams(self, tokens):
        """_VectorizerMixin._word_ngrams: the tokens (if min_n is 1), then the n-grams, n after n."""
        min_n, max_n = self.min_n, self.max_n
        if max_n == 1:
            return tokens
        original = tokens
        if min_n == 1:
            tokens = list(original)
            min_n += 1
        else:
            tokens = []
        for n in range(min_n, min(max_n + 1, len(original) + 1)):
            for start in range(len(original) - n + 1):
                tokens.append(" ".join(original[start:start + n]))
        return tokens


def read_vocabulary(fields):
    """vocabulary_: each term (a string) to its column, the columns 0 .. len - 1 each once."""
    vocabulary = fields.value("vocabulary_")
    if not isinstance(vocabulary, dict) or not vocabulary:
        raise fields.refuse("vocabulary_ is not a non-empty dict of terms")
    if not all(isinstance(term, str) for term in vocabulary):
        raise fields.refuse("vocabulary_ holds a term that is not a string")
    columns = list(vocabulary.values())
    if not all(isinstance(column, numbers.Integral) and not isinstance(column, (bool, np.bool_)) for column in columns):
        raise fields.refuse("vocabulary_ maps a term to something other than a column index")
    size = len(columns)
    if sorted(int(column) for column in columns) != list(range(size)):
        outside = [int(column) for column in columns if not 0 <= column < size]
        problem = f"index {outside[0]} is out of range for {size} terms" if outside else "an index is given twice"
        raise fields.refuse(f"vocabulary_: {problem}")
    return {term: int(column) for term, column in vocabulary.items()}


def read_norm(fields):
    norm = fields.value("norm")
    if not (norm is None or isinstance(norm, str) and norm in ("l1", "l2")):
        raise not_served(fields, "norm", norm)
    return norm


def normalized(rows, norm, who):
    """sklearn.preprocessing.normalize of a CSR matrix: check_array (finite values only), then each
    row divided by the sum of its values' absolute values (l1) or the square root of the sum of
    their squares (l2), a row whose sum is 0.0 left alone (inplace_csr_row_normalize_l1 and _l2)."""
    if not np.isfinite(rows.data).all():
        raise ValueError(f"{who}: Input contains NaN or infinity, which normalize refuses")
    terms = np.abs(rows.data) if norm == "l1" else rows.data * rows.data
    sums = rows.row_sums(terms)
    if norm == "l2":
        sums = np.sqrt(sums)
    sums[sums == 0.0] = 1.0  # x / 1.0 is x: the row as it was
    return rows.with_data(rows.data / np.repeat(sums, rows.lengths()))


class TfidfWeights:
    """A fitted TfidfTransformer's transform of count rows: sublinear tf, idf_, norm."""

    def __init__(self, record, n_features, owner):
        if not is_record(record) or record.kind != PREFIX + "TfidfTransformer":
            raise owner.refuse(f"_tfidf is a {getattr(record, 'kind', type(record).__name__)}, not a TfidfTransformer")
        self.fields = fields = Fields(record)
        self.norm = read_norm(fields)
        self.sublinear_tf = fields.boolean("sublinear_tf")
        if fields.n_features_in() != n_features:
            raise owner.refuse(f"its TfidfTransformer has {fields.n_features_in()} features, not {n_features}")
        # transform multiplies by idf_ whenever it is there: fitted with use_idf, whatever use_idf says now.
        self.idf = fields.array("idf_", (n_features,)) if fields.has("idf_") else None

    def transform(self, rows, who):
        data = rows.data.copy()
        if not np.isfinite(data).all():
            raise ValueError(f"{who}: X holds NaN or infinity")
        if self.sublinear_tf:
            with np.errstate(divide="ignore", invalid="ignore"):  # log(0) is -inf, log(-1) NaN there too
                np.log(data, out=data)
            data += 1.0
        if self.idf is not None:
            data *= self.idf[rows.indices]
        rows = rows.with_data(data)
        return rows if self.norm is None else normalized(rows, self.norm, who)


class DocumentsStep:
    """What the vectorizers share: documents in, SparseRows out, one row per document."""

    takes_documents = True
    n_features_in = 1
    outputs_sparse = True
    outputs_sparse_rows = True

    def __init__(self, record, build):
        self.fields = Fields(record)
        self.name = self.fields.class_name

    def transform(self, X):
        return SparseRows.from_rows([self.row(self.analyzer(document)) for document in documents(X, self.name)],
                                    self.n_features_out)


class CountVectorizerStep(DocumentsStep):
    """Each vocabulary term's count in the document (1 if binary), columns ascending. The counts come
    out as float64 whatever dtype says (int64 by default): whole numbers, the same values the next
    step converts them to."""

    DTYPES = COUNT_DTYPES

    def __init__(self, record, build):
        super().__init__(record, build)
        fields = self.fields
        read_dtype(fields, self.DTYPES)
        self.vocabulary = read_vocabulary(fields)
        self.n_features_out = len(self.vocabulary)
        self.analyzer = Analyzer(fields, learned_vocabulary=not fields.boolean("fixed_vocabulary_"))
        self.binary = fields.boolean("binary")

    def row(self, tokens):
        counts = {}
        for token in tokens:
            column = self.vocabulary.get(token)
            if column is not None:
                counts[column] = counts.get(column, 0) + 1
        columns = sorted(counts)
        return columns, [1.0] * len(columns) if self.binary else [float(counts[column]) for column in columns]


class TfidfVectorizerStep(CountVectorizerStep):
    """CountVectorizer's counts through its fitted TfidfTransformer (_tfidf), whose norm, sublinear_tf
    and idf_ are the ones transform uses (the vectorizer's own are copied there at fit)."""

    DTYPES = WEIGHT_DTYPES

    def __init__(self, record, build):
        super().__init__(record, build)
        self.weights = TfidfWeights(self.fields.value("_tfidf"), self.n_features_out, self.fields)

    def transform(self, X):
        return self.weights.transform(super().transform(X), self.name)


class TfidfTransformerStep:
    """A fitted TfidfTransformer on count rows: a vectorizer's SparseRows, or a dense matrix, which
    scikit-learn makes a CSR matrix of its nonzero cells first."""

    accepts_sparse_rows = True
    accepts_densified_sparse = True  # the same nonzero cells, whether scipy's or dense with zeros
    outputs_sparse = True
    outputs_sparse_rows = True

    def __init__(self, record, build):
        self.fields = Fields(record)
        self.n_features_in = self.fields.n_features_in()
        self.weights = TfidfWeights(record, self.n_features_in, self.fields)

    def transform(self, X):
        if isinstance(X, SparseRows):
            rows = X.checked(self.n_features_in, "TfidfTransformer")
        else:
            rows = SparseRows.from_dense(as_float_matrix(X, self.n_features_in, "TfidfTransformer", allow_nan=False))
        return self.weights.transform(rows, "TfidfTransformer")


class HashingVectorizerStep(DocumentsStep):
    """Each token's murmurhash3_32 picks its column (of n_features) and, with alternate_sign, the sign
    of its 1; then binary, then the norm."""

    def __init__(self, record, build):
        super().__init__(record, build)
        fields = self.fields
        read_dtype(fields, WEIGHT_DTYPES)
        self.analyzer = Analyzer(fields, learned_vocabulary=False)
        self.n_features_out = fields.integer("n_features", minimum=1)
        if self.n_features_out > np.iinfo(np.int32).max:
            raise fields.refuse(f"n_features is {self.n_features_out}, more than FeatureHasher takes")
        self.alternate_sign = fields.boolean("alternate_sign")
        self.binary = fields.boolean("binary")
        self.norm = read_norm(fields)

    def column_and_sign(self, token):
        """_hashing_fast.transform: abs(h) % n_features, with abs(-2**31) taken as 2**31 - 1 modulo it."""
        hashed = murmurhash3_32(token.encode("utf-8"))
        n_features = self.n_features_out
        column = (2147483647 - (n_features - 1)) % n_features if hashed == -2147483648 else abs(hashed) % n_features
        return column, -1.0 if self.alternate_sign and hashed < 0 else 1.0

    def row(self, tokens):
        sums = {}
        for token in tokens:
            column, sign = self.column_and_sign(token)
            sums[column] = sums.get(column, 0.0) + sign  # a 0.0 sum stays stored, as sum_duplicates keeps it
        columns = sorted(sums)
        return columns, [1.0] * len(columns) if self.binary else [sums[column] for column in columns]

    def transform(self, X):
        rows = super().transform(X)
        if rows.shape[0] == 0:
            raise ValueError("HashingVectorizer: Cannot vectorize empty sequence.")
        return rows if self.norm is None else normalized(rows, self.norm, self.name)


STEPS = {
    PREFIX + "CountVectorizer": CountVectorizerStep,
    PREFIX + "TfidfVectorizer": TfidfVectorizerStep,
    PREFIX + "TfidfTransformer": TfidfTransformerStep,
    PREFIX + "HashingVectorizer": HashingVectorizerStep,
}
