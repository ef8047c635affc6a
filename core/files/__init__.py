"""Everything read from or written to disk: texts (``text``, ``vocab``, ``builtin_text``), model
files (``modelfile``) and the process locks they share (``proclock``).
"""
