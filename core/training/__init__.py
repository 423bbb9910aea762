"""The trainer (:mod:`~dreamset.training.trainer`) and what it calls: the training objective, the
augmentations, prefetched batches, row groups and the per-epoch curves.
"""
