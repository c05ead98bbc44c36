"""``python -m fastnn train | bench | tune``: the command line (``fastnn.cli.main``)."""
import sys

from fastnn.cli import main

sys.exit(main())
