"""Decision trees and the forests of them (RandomForest, ExtraTrees), scored as scikit-learn does.

scikit-learn (sklearn/tree/_tree.pyx, Tree._apply_dense) casts X to float32, and at each node goes
left when X[feature] <= threshold, the float32 widened to compare with the float64 threshold, or,
for a missing value (NaN), the way the node's missing_go_to_left says. The leaf's row of `value`
is the answer: a classifier's class fractions (this scikit-learn version stores them normalised,
and predict_proba returns them as stored), a regressor's mean. A forest adds its trees' answers
to zeros, in estimator order, and divides by the number of trees (ForestClassifier.predict_proba,
ForestRegressor.predict). The same float operations in the same order give the same floats.

A text vectorizer's SparseRows are what scikit-learn's trees take as a CSR matrix: cast to float32,
NaN refused (_support_missing_values is False for sparse input), and each row made dense as it is
walked (Tree._apply_sparse_csr), so the same float32 values are compared. Here only the columns the
trees split on are made dense, and a copy of the walk reads them by their place among those: a
vocabulary's thousands of columns, or HashingVectorizer's 2**20, are never dense all at once.

All of a forest's trees are walked for all rows at once: their nodes side by side in one set of
arrays, one numpy step per level of depth, a leaf pointing to itself. A row's walk never looks at
another row, so a row gets the same floats alone as in any batch.

Every array of a tree is checked when it is built: dtypes and shapes, each node's children after
it and within the tree, no node with two parents (so every walk ends, within the tree's depth),
features within n_features_in_, thresholds neither NaN nor -inf (+inf is scikit-learn's own, for a
split that sends only the missing values right), leaf values finite.
"""

import copy
import numbers

import numpy as np

from serving.records import RecordError
from serving.scorers import Fields, ScoredOnce, as_float_matrix, is_record
from serving.scorers.sparse import SparseRows

TREE = "sklearn.tree._tree.Tree"
TREES = "sklearn.tree._classes."
FORESTS = "sklearn.ensemble._forest."
NESTED_KINDS = {TREE}
# A walk's working arrays hold at most about this many (row, tree) pairs at once.
WALK_CHUNK = 1 << 16


def is_integer(value, expected):
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)) and value == expected


def tree_input(X, n_features, who, allow_nan=True):
    """X as the float32 matrix scikit-learn's trees are given: check_array(dtype=float32), which refuses
    infinity, and a float64 too large for a float32, which becomes infinity on the way."""
    with np.errstate(over="ignore"):
        X32 = as_float_matrix(X, n_features, who, allow_nan=allow_nan).astype(np.float32)
    if np.isinf(X32).any():
        raise ValueError(f"{who}: X holds a value too large for float32")
    return X32


def walk_and_input(walk, X, n_features, who, allow_nan):
    """The walk and the float32 matrix it reads: tree_input of X, or for SparseRows the columns the
    walk splits on, dense, and the walk reading those (see the module's doc)."""
    if not isinstance(X, SparseRows):
        return walk, tree_input(X, n_features, who, allow_nan)
    columns, reading_them = walk.reading_columns()
    X = X.checked(n_features, who)
    return reading_them, tree_input(X.columns(columns), columns.shape[0], who, allow_nan=False)


def check_links(trees, roots, sizes, left, right, is_leaf):
    """Refuse unless each tree's internal nodes' children make a tree rooted at its node 0: each
    child after its parent and within its tree, no node with two parents (so every walk ends, within
    the tree's depth). All the trees at once: `roots` their first nodes side by side, `sizes` their
    numbers of nodes, `left` and `right` each node's children as its tree numbers them. Returns the
    children side by side, a leaf its own child."""
    first, node, size = np.repeat(roots, sizes), np.arange(int(sizes.sum())), sizes.repeat(sizes)  # size: of each node's tree
    internal = ~is_leaf

    def children(side, local):
        child = local + first
        first_refused(trees, roots, internal & ((local < 0) | (local >= size)),
                      lambda parent, at: f"node {parent}'s {side} child {int(local[at])} is outside its {int(size[at])} nodes")
        first_refused(trees, roots, internal & (child <= node),
                      lambda parent, at: f"node {parent}'s {side} child {int(local[at])} does not come after it")
        return np.where(internal, child, node)

    left, right = children("left", left), children("right", right)
    parents = np.bincount(np.concatenate([left[internal], right[internal]]), minlength=node.shape[0])
    first_refused(trees, roots, parents > 1, lambda twice, at: f"node {twice} has two parents")
    return left, right


def first_refused(trees, roots, bad, problem):
    """Refuse the tree of the first node `bad` marks (all trees' nodes side by side), if any:
    problem(node as its tree numbers it, node side by side) says what is wrong."""
    if bad.any():
        at = int(np.argmax(bad))
        tree, node = tree_and_node(trees, roots, at)
        raise tree.refuse(problem(node, at))


def tree_and_node(trees, roots, at):
    """The tree holding node `at` (numbered side by side), and the node as that tree numbers it."""
    tree = int(np.searchsorted(roots, at, side="right")) - 1
    return trees[tree], at - int(roots[tree])


def node_field(nodes, name, kinds, refuse):
    """One field of a structured node array, refused unless its dtype is of the given kinds."""
    if nodes.dtype.names is None or name not in nodes.dtype.names:
        raise refuse(f"its nodes have no field {name!r}")
    field = nodes[name]
    if field.dtype.kind not in kinds:
        raise refuse(f"its nodes' {name} field is {field.dtype}, not of kind {kinds!r}")
    return field


# A Tree's node fields the walk reads, and the kinds of dtype each may have.
NODE_FIELDS = {"left_child": "i", "right_child": "i", "feature": "i", "threshold": "f", "missing_go_to_left": "ub"}


class TreeNodes:
    """A fitted sklearn.tree._tree.Tree, its record checked: its nodes (a structured array with
    NODE_FIELDS) and values (n_nodes, n_values). TreeWalk reads and checks the nodes of all the
    trees it walks at once (a forest's hundred, a boosting's hundreds: one numpy step each, not one per tree)."""

    def __init__(self, record, n_features, n_values, classifier, refuse):
        if not is_record(record) or record.kind != TREE:
            raise refuse(f"it is a {getattr(record, 'kind', type(record).__name__)}, not a {TREE}")
        args, state = record.args, record.state
        if len(args) != 3 or not is_integer(args[0], n_features) or not is_integer(args[2], 1):
            raise refuse(f"its Tree was made for other than {n_features} features and one output")
        n_classes = args[1]  # per output
        if not isinstance(n_classes, np.ndarray) or n_classes.dtype.kind not in "iu" or n_classes.tolist() != [
                n_values]:
            raise refuse(f"its Tree was made for other than {n_values} classes")
        nodes, values = state.get("nodes"), state.get("values")
        node_count = state.get("node_count")
        if not isinstance(nodes, np.ndarray) or nodes.ndim != 1 or not is_integer(node_count, nodes.shape[0]) or (
                node_count < 1):
            raise refuse("its nodes are not a 1-D array of node_count nodes")
        if not isinstance(values, np.ndarray) or values.dtype != np.float64:
            raise refuse(f"its values are {getattr(values, 'dtype', type(values).__name__)}, not float64")
        if values.shape != (node_count, 1, n_values):
            raise refuse(f"its values are {values.shape}, not ({node_count}, 1, {n_values})")
        for name, kinds in NODE_FIELDS.items():
            node_field(nodes, name, kinds, refuse)
        self.nodes, self.values, self.n_nodes = nodes, values[:, 0, :], int(node_count)
        self.n_features, self.classifier, self.refuse = n_features, classifier, refuse


class TreeWalk:
    """Trees side by side: each row walked down every tree at once, one level per step."""

    def __init__(self, trees):
        sizes = np.array([tree.n_nodes for tree in trees])
        self.roots = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
        left, right, is_leaf = self.read_nodes(trees)
        # A leaf points to itself (and splits on feature 0), so further steps leave it where it is.
        self.left, self.right = check_links(trees, self.roots, sizes, left, right, is_leaf)
        self.feature = np.where(is_leaf, 0, self.feature)
        self.internal = ~is_leaf

    def read_nodes(self, trees):
        """The trees' (TreeNodes) node fields side by side, checked: features within n_features_in_,
        thresholds neither NaN nor -inf, leaf values finite (a classifier's, fractions). Sets the
        walk's arrays; returns each node's children as its tree numbers them, and which are leaves."""
        def field(name, dtype):
            return np.concatenate([tree.nodes[name] for tree in trees]).astype(dtype)

        left, right = field("left_child", np.intp), field("right_child", np.intp)
        self.feature, self.threshold = field("feature", np.intp), field("threshold", np.float64)
        self.missing_left = field("missing_go_to_left", bool)
        self.values = np.concatenate([tree.values for tree in trees])
        is_leaf, roots, n_features = left == -1, self.roots, trees[0].n_features
        first_refused(trees, roots, is_leaf != (right == -1), lambda node, at: f"node {node} has one child")
        internal = ~is_leaf
        first_refused(trees, roots, internal & ((self.feature < 0) | (self.feature >= n_features)),
                      lambda node, at: f"node {node} splits on feature {int(self.feature[at])} of {n_features}")
        first_refused(trees, roots, internal & (np.isnan(self.threshold) | (self.threshold == -np.inf)),
                      lambda node, at: f"node {node}'s threshold is {self.threshold[at]}")
        leaf_values = np.where(is_leaf[:, np.newaxis], self.values, 0.0)
        bad = ~np.isfinite(leaf_values).all(axis=1)
        if trees[0].classifier:
            bad |= ((leaf_values < 0) | (leaf_values > 1)).any(axis=1)
        first_refused(trees, roots, bad, lambda node, at: "a leaf's values are not finite" + (
            " fractions" if trees[0].classifier else ""))
        return left, right, is_leaf

    def reading_columns(self):
        """The columns the trees split on, ascending, and a copy of this walk that reads a matrix of
        only those columns, each by its place among them (made once, then kept)."""
        if getattr(self, "columns_read", None) is None:
            columns = np.unique(self.feature)
            reading_them = copy.copy(self)
            reading_them.feature = np.searchsorted(columns, self.feature)
            self.columns_read = (columns, reading_them)
        return self.columns_read

    def row_chunks(self, n_rows, width=1):
        """Slices of the rows, each small enough that its (row, tree, width) arrays stay within WALK_CHUNK items."""
        rows = max(1, WALK_CHUNK // (self.roots.shape[0] * width))
        return [slice(start, start + rows) for start in range(0, n_rows, rows)]

    def leaves(self, X):
        """(n_rows, n_trees): the node where each row ends in each tree."""
        chunks = [self.walk(X[rows]) for rows in self.row_chunks(X.shape[0])]
        return np.concatenate(chunks) if chunks else np.empty((0, self.roots.shape[0]), dtype=np.intp)

    def add_leaf_values(self, X, start, leaf_values, trees_per_term=1):
        """`start` (n_rows, width) plus, term after term, the `leaf_values` (n_nodes, width per tree) of
        the leaves where each row ends in the term's trees: scikit-learn's loops' sums (a forest's
        tree after tree, a boosting's stage after stage), in their order, so bit for bit.
        np.add.accumulate adds in order along the terms, where np.sum would add in pairs."""
        total = np.array(start, dtype=np.float64)
        n_terms = self.roots.shape[0] // trees_per_term
        for rows in self.row_chunks(X.shape[0], leaf_values.shape[1]):
            terms = leaf_values[self.walk(X[rows])].reshape(-1, n_terms, total.shape[1])
            total[rows] = np.add.accumulate(np.concatenate([total[rows, np.newaxis], terms], axis=1), axis=1)[:, -1]
        return total

    def walk(self, X):
        """(n_rows, n_trees): each (row, tree) pair walked down a level at a time. While most pairs
        are still walking, every pair takes a step (a leaf is its own child); then only those that
        are (most reach a leaf well above the deepest tree's depth)."""
        n_rows, n_trees = X.shape[0], self.roots.shape[0]
        node = np.tile(self.roots, n_rows)
        cells = np.ascontiguousarray(X).ravel()
        row_start = np.repeat(np.arange(n_rows) * X.shape[1], n_trees)
        walking = np.take(self.internal, node)
        while 2 * np.count_nonzero(walking) > node.size:
            node = self.step(cells, row_start, node)
            walking = np.take(self.internal, node)
        walking = np.flatnonzero(walking)
        while walking.size:
            node[walking] = self.step(cells, np.take(row_start, walking), np.take(node, walking))
            walking = walking[np.take(self.internal, np.take(node, walking))]
        return node.reshape(n_rows, n_trees)

    def step(self, cells, row_start, node):
        """Each pair's next node, its row's cells starting at row_start (np.take on flat arrays:
        the quickest gather numpy has)."""
        value = np.take(cells, row_start + np.take(self.feature, node))
        return np.where(self.goes_left(value, node), np.take(self.left, node), np.take(self.right, node))

    def goes_left(self, value, node):
        # value <= threshold compares in float64, as C widens the float32 to the double threshold.
        go_left = value <= np.take(self.threshold, node)
        missing = np.isnan(value)
        if missing.any():
            go_left = np.where(missing, np.take(self.missing_left, node), go_left)
        return go_left


def read_single_output(fields):
    if fields.integer("n_outputs_", minimum=1) != 1:
        raise fields.refuse("it was fitted on several outputs; only one is served")


class DecisionTreeRegressorStep:
    """DecisionTreeRegressor and ExtraTreeRegressor: the leaf's value."""

    classifier = False
    accepts_sparse_rows = True

    def __init__(self, record, build, alone=True):
        self.fields = fields = Fields(record)
        self.n_features_in = fields.n_features_in()
        read_single_output(fields)
        self.n_values = self.read_classes()
        self.tree = TreeNodes(fields.value("tree_"), self.n_features_in, self.n_values, self.classifier,
                              lambda problem: fields.refuse(f"tree_: {problem}"))
        if alone:  # a forest's or a boosting's trees are walked together, and their links checked there
            self.walk = TreeWalk([self.tree])
        # Its __sklearn_tags__: an ExtraTree takes missing values only with the random splitter.
        self.allows_missing = record.kind.startswith(TREES + "Decision") or fields.value("splitter") == "random"

    def read_classes(self):
        return 1

    def leaf_values(self, X):
        walk, X32 = walk_and_input(self.walk, X, self.n_features_in, self.fields.class_name, self.allows_missing)
        return walk.values[walk.leaves(X32)[:, 0]]

    def predict(self, X):
        return self.leaf_values(X)[:, 0]


class DecisionTreeClassifierStep(ScoredOnce, DecisionTreeRegressorStep):
    """DecisionTreeClassifier and ExtraTreeClassifier: the leaf's class fractions, and the first
    class of the largest."""

    classifier = True

    def read_classes(self):
        self.classes = self.fields.classes()
        n_classes = self.fields.integer("n_classes_", minimum=1)
        if n_classes != self.classes.shape[0]:
            raise self.fields.refuse(f"n_classes_ is {n_classes} but classes_ holds {self.classes.shape[0]}")
        return n_classes

    def scores(self, X):
        return self.leaf_values(X)

    def labels(self, fractions):
        return self.classes.take(np.argmax(fractions, axis=1), axis=0)

    def probabilities(self, fractions):
        return fractions


def tree_in_ensemble(record, tree_step, build, refuse):
    """A forest's or a boosting's tree, a `tree_step` built without a walk of its own; refuse(": why")
    or refuse(" is not ...") if it is not one."""
    if STEPS.get(getattr(record, "kind", None) if is_record(record) else None) is not tree_step:
        raise refuse(f" is a {getattr(record, 'kind', type(record).__name__)}, not a {tree_step.__name__[:-4]}")
    try:
        step = tree_step(record, build, alone=False)
    except RecordError as error:
        raise refuse(f": {error}") from None
    in_tree = step.tree.refuse  # the ensemble's TreeWalk refuses a tree's links: say which tree, as here
    step.tree.refuse = lambda problem: refuse(f": {in_tree(problem)}")
    return step


class ForestRegressorStep:
    """RandomForestRegressor and ExtraTreesRegressor: the mean of the trees' predictions."""

    tree_step = DecisionTreeRegressorStep
    accepts_sparse_rows = True

    def __init__(self, record, build):
        self.fields = fields = Fields(record)
        self.n_features_in = fields.n_features_in()
        read_single_output(fields)
        self.n_values = self.read_classes()
        estimators = fields.value("estimators_")
        if not isinstance(estimators, list) or not estimators:
            raise fields.refuse("estimators_ is not a list of trees")
        steps = [self.read_tree(index, build, estimator) for index, estimator in enumerate(estimators)]
        self.walk = TreeWalk([step.tree for step in steps])
        self.allows_missing = steps[0].allows_missing  # as _validate_X_predict asks estimators_[0]

    def read_classes(self):
        return 1

    def read_tree(self, index, build, record):
        step = tree_in_ensemble(record, self.tree_step, build, lambda problem: self.fields.refuse(
            f"estimators_[{index}]{problem}"))
        if step.n_features_in != self.n_features_in or step.n_values != self.n_values:
            raise self.fields.refuse(f"estimators_[{index}] is not a tree of its {self.n_features_in} features"
                                     f" and {self.n_values} values")
        return step

    def mean_leaf_values(self, X):
        """The trees' leaf values added to zeros one tree after another, then divided by their number."""
        walk, X32 = walk_and_input(self.walk, X, self.n_features_in, self.fields.class_name, self.allows_missing)
        total = walk.add_leaf_values(X32, np.zeros((X32.shape[0], self.n_values)), walk.values)
        total /= walk.roots.shape[0]
        return total

    def predict(self, X):
        return self.mean_leaf_values(X)[:, 0]


class ForestClassifierStep(ScoredOnce, ForestRegressorStep):
    """RandomForestClassifier and ExtraTreesClassifier: the mean of the trees' class fractions,
    and the first class of the largest."""

    tree_step = DecisionTreeClassifierStep

    def read_classes(self):
        return DecisionTreeClassifierStep.read_classes(self)

    def scores(self, X):
        return self.mean_leaf_values(X)

    labels = DecisionTreeClassifierStep.labels
    probabilities = DecisionTreeClassifierStep.probabilities


STEPS = {
    TREES + "DecisionTreeClassifier": DecisionTreeClassifierStep,
    TREES + "ExtraTreeClassifier": DecisionTreeClassifierStep,
    TREES + "DecisionTreeRegressor": DecisionTreeRegressorStep,
    TREES + "ExtraTreeRegressor": DecisionTreeRegressorStep,
    FORESTS + "RandomForestClassifier": ForestClassifierStep,
    FORESTS + "ExtraTreesClassifier": ForestClassifierStep,
    FORESTS + "RandomForestRegressor": ForestRegressorStep,
    FORESTS + "ExtraTreesRegressor": ForestRegressorStep,
}
