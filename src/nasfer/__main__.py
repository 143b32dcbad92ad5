"""`python -m nasfer ...` runs the command line (the same as the `nasfer` script)."""

import sys

from .cli import main

sys.exit(main())
