"""``python -m annonorm`` runs the command line."""

from annonorm.cli import app

app(prog_name="annonorm")
