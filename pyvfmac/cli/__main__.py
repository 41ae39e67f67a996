"""``python -m pyvfmac.cli``: the same as ``vfmac``."""

import sys

from . import main

sys.exit(main())
