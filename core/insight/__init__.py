"""What a model has learned: per-character surprise and activations (``inspect``), text detectors,
compression yardsticks, the copy index (``copies``) and the HTML page of a passage (``html``).
"""
