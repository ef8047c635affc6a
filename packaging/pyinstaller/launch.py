"""Entry script of the PyInstaller build: start CharLSTM Studio exactly as ``charlstm-gui`` does.

PyInstaller needs a script, not an entry point; this one only hands ``sys.argv`` to ``app.main``.
"""

import sys

from charlstm_gui.app import main

if __name__ == "__main__":
    sys.exit(main(sys.argv))
