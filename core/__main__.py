"""``python -m charlstm_core``: the ``charlstm`` command line without the installed console
script."""

import sys

from .cli import main

sys.exit(main())
