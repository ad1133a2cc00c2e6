"""``python -m annonorm`` runs the command line."""

from annonorm.cli import run

run()
