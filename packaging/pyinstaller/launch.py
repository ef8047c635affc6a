"""Entry script of the PyInstaller build: start CharLSTM Studio exactly as ``charlstm-gui`` does.

PyInstaller needs a script, not an entry point; this one only hands ``sys.argv`` to ``app.main``,
after ``freeze_support``: a sweep of several runs at once starts worker processes from this
executable, which must then run the worker, not the app.
"""

import multiprocessing
import sys

from charlstm_gui.app import main

if __name__ == "__main__":
    multiprocessing.freeze_support()
    sys.exit(main(sys.argv))
