"""``python -m pyirqbalance``."""

import sys

from .app import main

sys.exit(main())
