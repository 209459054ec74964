"""Run the command line: ``python -m tablesync``."""

from tablesync.cli import main

main()
