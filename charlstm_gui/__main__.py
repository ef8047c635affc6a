"""``python -m charlstm_gui``: start the desktop application."""

import sys

from .app import main

sys.exit(main(sys.argv))
