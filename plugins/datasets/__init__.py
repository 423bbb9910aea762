"""Built-in datasets: one component per module, each registered through its own entry point.
The stratified train/test split the bundled datasets share lives here once."""
from __future__ import annotations


def stratified_split(labels, train_size: int, test_size: int | None, seed: int, name: str):
    """``(train_idx, test_idx)``, sorted ``int64`` index arrays: ``train_size`` images drawn
    stratified by ``labels`` with ``seed`` (0 allowed: no training split), then ``test_size`` of the
    rest, stratified likewise (``None``: all the rest). ``name`` prefixes the one-line error."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    from dreamset.contracts.errors import BadInputError

    n = len(labels)
    test_size = test_size or n - train_size
    if train_size + test_size > n:
        raise BadInputError(f"{name}: train_size + test_size = {train_size + test_size} exceeds the {n} images")
    index = np.arange(n)
    if train_size:
        train_idx, rest = train_test_split(index, train_size=train_size, stratify=labels, random_state=seed)
    else:
        train_idx, rest = index[:0], index
    if test_size < len(rest):
        test_idx, _ = train_test_split(rest, train_size=test_size, stratify=labels[rest], random_state=seed)
    else:
        test_idx = rest
    return np.sort(train_idx), np.sort(test_idx)
