"""``python -m hadamard_zoo ...``: the ``hadamard-zoo`` command (see :mod:`hadamard_zoo.cli`)."""

import sys

from hadamard_zoo.cli import main

sys.exit(main())
