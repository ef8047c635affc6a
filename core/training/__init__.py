"""A training run: the session every front end runs (``session``, with its ``stopping`` signals,
``threads`` policy and ``saving`` fallback), the trainer (a generator of events) composed of a
budget, a healer (``rollback``, deciding with ``heal``) and a checkpointer; the run rules both
front ends share (``policy``) and the estimates (``plan``).
"""
