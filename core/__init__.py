"""CharLSTM engine: a character-level LSTM language model in plain NumPy.

No Qt here: the engine trains, samples and evaluates headless (``charlstm`` command line) and is
driven by the desktop application through the same API.
"""

__version__ = "0.1.0"
