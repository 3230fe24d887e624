"""``python -m sen2core``."""

from sen2core.cli import main

main()
