"""A training run: the trainer (a generator of events) and its budget, healing, checkpoints and
rollbacks; the run rules both front ends share (``policy``) and the estimates (``plan``).
"""
