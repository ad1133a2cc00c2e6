"""``python -m annonorm`` runs the command line."""

from annonorm.cli import run

if __name__ == "__main__":
    run()
