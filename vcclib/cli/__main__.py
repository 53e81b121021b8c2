import sys

from vcclib.cli import main

sys.exit(main())
