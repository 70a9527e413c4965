"""``python -m mtlrun`` is the ``mtlrun`` command."""

from mtlrun.cli.main import main

main()
