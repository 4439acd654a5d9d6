"""``python -m eosdsl.cli`` is the ``eosdsl`` command."""

from eosdsl.cli import main

main()
