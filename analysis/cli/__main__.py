"""`python -m analysis.cli ...` runs the `edgevit` command."""

import sys

from .main import main

sys.exit(main())
