"""``python -m vcclib.cli``: the ``vcc`` command."""

import sys

from vcclib.cli import main

sys.exit(main())
