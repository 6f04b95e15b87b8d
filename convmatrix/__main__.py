"""``python -m convmatrix``: the ``convmatrix`` command line (see :mod:`convmatrix.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
