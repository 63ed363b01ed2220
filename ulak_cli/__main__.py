"""`python -m ulak_cli ...`, the same as the `ulak` console script."""

import sys

from ulak_cli.main import main

sys.exit(main())
