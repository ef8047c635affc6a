"""``python -m charlstm_core``: the ``charlstm`` command line without the installed console
script.

A Ctrl-C while the command line's own modules are still being imported ends quietly with status
130 (``main`` then guards the parser's import the same way, and the commands their work); without
this handler, Python would print a KeyboardInterrupt traceback from the import machinery.
"""

import signal
import sys

signal.signal(signal.SIGINT, lambda signum, frame: sys.exit(128 + signal.SIGINT))

from .cli import main  # noqa: E402 - under the handler above

signal.signal(signal.SIGINT, signal.default_int_handler)
sys.exit(main())
