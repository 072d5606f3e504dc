"""`python -m problems ...`: see problems/cli.py."""
import sys

from problems.cli import main

sys.exit(main())
