"""`python -m roomlog`: the same as the `roomlog` command."""

import sys

from roomlog.cli import main

sys.exit(main())
