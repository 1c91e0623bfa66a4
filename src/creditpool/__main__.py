"""Run the command line as `python -m creditpool`."""

from creditpool.cli import app

app()
