"""``python -m dlcc``: the command line (see :mod:`dlcc.cli`)."""

from dlcc.cli import main

raise SystemExit(main())
