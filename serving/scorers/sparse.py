"""SparseRows: a scipy CSR matrix held as numpy arrays, as the text vectorizers give their output.

A vectorizer's output is as wide as its vocabulary (2**20 columns for HashingVectorizer's default),
and each row stores only the few columns its document holds: kept dense, a batch would not fit in
memory. A CSR matrix keeps each row's stored columns in order (ascending columns, for everything
built here, as scikit-learn sorts them), and the compiled loops that read it add a row's values in
that order, from 0.0: a row's norm (sklearn/utils/sparsefuncs_fast.pyx, _inplace_csr_row_normalize_l1
and _l2) and a row times a column of coefficients (scipy's csr_matvec and csr_matvecs, which a
linear model's `X @ coef_.T` runs). `row_sums` adds the same values in the same order, so the floats
are theirs; a row is added alone, so it gets the same floats alone as in any batch.

A stored zero is kept where scipy keeps one (HashingVectorizer's tokens of opposite signs that
collide sum to a stored 0.0, which binary=True then makes a 1.0), since it can change a result.
"""

import numpy as np


class SparseRows:
    """Rows of `n_columns` columns: row i stores the columns indices[indptr[i]:indptr[i + 1]], ascending,
    with the values data[indptr[i]:indptr[i + 1]] (float64)."""

    def __init__(self, indptr, indices, data, n_columns):
        self.indptr = np.asarray(indptr, dtype=np.intp)
        self.indices = np.asarray(indices, dtype=np.intp)
        self.data = np.asarray(data, dtype=np.float64)
        self.shape = (self.indptr.shape[0] - 1, int(n_columns))
        self.ndim = 2

    @classmethod
    def from_rows(cls, rows, n_columns):
        """From (columns, values) per row, each row's columns ascending and distinct."""
        lengths = [len(columns) for columns, _ in rows]
        indptr = np.concatenate([[0], np.cumsum(lengths, dtype=np.intp)])
        indices = np.fromiter((column for columns, _ in rows for column in columns), dtype=np.intp, count=indptr[-1])
        data = np.fromiter((value for _, values in rows for value in values), dtype=np.float64, count=indptr[-1])
        return cls(indptr, indices, data, n_columns)

    @classmethod
    def from_dense(cls, X):
        """A float matrix's nonzero cells (NaN among them), row after row, as scipy's csr_array(X) and
        coo_array(X) store them."""
        rows, columns = np.nonzero(X)
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=X.shape[0]), dtype=np.intp)])
        return cls(indptr, columns, X[rows, columns], X.shape[1])

    @classmethod
    def hstack(cls, blocks):
        """The blocks side by side, as scipy.sparse.hstack(...).tocsr() puts them: each row's entries
        block after block, so ascending columns when each block's are."""
        n_rows = blocks[0].shape[0]
        offsets = np.cumsum([0] + [block.shape[1] for block in blocks])
        rows = np.concatenate([block.row_of_each_entry() for block in blocks])
        order = np.argsort(rows, kind="stable")  # stable: within a row, the blocks' order and each block's own
        indices = np.concatenate([block.indices + offset for block, offset in zip(blocks, offsets)])[order]
        data = np.concatenate([block.data for block in blocks])[order]
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_rows), dtype=np.intp)])
        return cls(indptr, indices, data, offsets[-1])

    def with_data(self, data):
        return SparseRows(self.indptr, self.indices, data, self.shape[1])

    def __mul__(self, factor):
        """Every stored value times a number, as a scipy matrix times a scalar (a ColumnTransformer's weight)."""
        return self.with_data(self.data * factor)

    def lengths(self):
        return np.diff(self.indptr)

    def row_of_each_entry(self):
        return np.repeat(np.arange(self.shape[0]), self.lengths())

    def toarray(self):
        dense = np.zeros(self.shape)
        dense[self.row_of_each_entry(), self.indices] = self.data
        return dense

    def columns(self, chosen):
        """The dense (n_rows, len(chosen)) matrix of the columns `chosen` (ascending, distinct)."""
        position = np.searchsorted(chosen, self.indices)
        kept = position < len(chosen)
        kept[kept] = chosen[position[kept]] == self.indices[kept]
        dense = np.zeros((self.shape[0], len(chosen)))
        dense[self.row_of_each_entry()[kept], position[kept]] = self.data[kept]
        return dense

    def row_sums(self, values):
        """Each row's `values` (one per stored entry, or a row of them per entry) added in the stored
        order, starting from 0.0: the entries at each position of all the rows still that long are
        added at once, so as many numpy steps as the longest row has entries."""
        lengths = self.lengths()
        order = np.argsort(-lengths, kind="stable")  # longest first: the rows still adding are a prefix
        starts, longest_first = self.indptr[:-1][order], lengths[order]
        sums = np.zeros((self.shape[0],) + values.shape[1:])
        for position in range(int(longest_first[0]) if self.shape[0] else 0):
            still = int(np.searchsorted(-longest_first, -position, side="left"))  # rows longer than position
            if still == 1:  # one row left: the rest of it in one np.add.accumulate, which adds in order
                rest = values[starts[0] + position:starts[0] + longest_first[0]]
                sums[0] = np.add.accumulate(np.concatenate([sums[:1], rest]), axis=0)[-1]
                break
            sums[:still] += values[starts[:still] + position]
        unsorted = np.empty_like(sums)
        unsorted[order] = sums
        return unsorted

    def dot_rows(self, coef):
        """(n_rows, k): each row times each of coef's k rows, as scipy's csr_matvecs sums it."""
        return self.row_sums(self.data[:, np.newaxis] * coef.T[self.indices])

    def checked(self, n_features, who):
        """These rows, if they are what check_array(accept_sparse='csr') takes for `n_features` features."""
        if self.shape[1] != n_features:
            raise ValueError(f"{who}: X has {self.shape[1]} features, but {n_features} are expected")
        if not np.isfinite(self.data).all():
            raise ValueError(f"{who}: X holds NaN or infinity")
        return self
