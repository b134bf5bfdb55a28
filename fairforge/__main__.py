"""`python -m fairforge` is the `fairforge` console script."""

import sys

from .cli import main

sys.exit(main())
