"""The maths of the model and where it runs: parameters and passes (``model``), one-character
passes (``inference``), Adam and the schedule (``optim``), a batch on threads (``parallel``),
the allocator (``memory``), device choice (``devices``) and the CuPy engine (``gpu``, ``kernels``).
"""
