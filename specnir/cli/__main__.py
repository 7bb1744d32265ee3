"""``python -m specnir.cli``."""

import sys

from specnir.cli import main

sys.exit(main())
