"""``python -m xlemu`` runs the command line."""

from xlemu.cli import main

main()
