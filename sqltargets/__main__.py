"""``python -m sqltargets``."""

import sys

from .cli import main

sys.exit(main())
