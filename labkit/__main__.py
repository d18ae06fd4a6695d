"""Run the `labkit` command line as `python -m labkit`."""

import sys

from labkit.cli import main

sys.exit(main())
