"""CharLSTM Studio: the desktop window around the NumPy engine in ``core``.

Pick a text, set a few hyperparameters and watch a character-level LSTM learn to write like it.
Run it with ``python -m charlstm_gui`` or the ``charlstm-gui`` launcher.
"""

APP_NAME = "CharLSTM Studio"
ORG_NAME = "CharLSTM"
DESKTOP_FILE_NAME = "charlstm-studio"
