"""``python -m pipeline.cli.main ...``: the same as ``fxemu ...``."""
import sys

from pipeline.cli.main import main

sys.exit(main())
