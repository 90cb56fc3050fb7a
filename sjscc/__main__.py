"""``python -m sjscc``: the same command as ``sjscc`` (:mod:`sjscc.cli`)."""

import sys

from sjscc.cli import main

sys.exit(main())
