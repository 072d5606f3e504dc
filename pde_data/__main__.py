"""`python -m pde_data ...`: see pde_data/cli.py."""
import sys

from pde_data.cli import main

sys.exit(main())
