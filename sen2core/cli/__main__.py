"""``python -m sen2core.cli``."""

from sen2core.cli import main

main()
