"""``python -m tuner``: the command line."""

from __future__ import annotations

import sys

try:
    from .cli import main
except KeyboardInterrupt:  # Ctrl-C while the libraries load: the same one line as anywhere else, no traceback
    print("interrupted: nothing was started; run the same command again", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
