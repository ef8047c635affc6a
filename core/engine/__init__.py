"""The maths of the model and where it runs: one layer step and the loss (``cell``), parameters
and the passes built on it (``model``), inspection's traced pass (``trace``), Adam, the clip and
the schedule (``optim``), the contract every caller uses (``protocol``), the engines (``cpu``;
``gpu`` with its fused ``kernels``), device choice (``devices``), a batch on threads
(``parallel``) and the allocator (``memory``).
"""
