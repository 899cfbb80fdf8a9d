"""``python -m harness.cli``: the ``harness`` command (as torchrun and deepspeed launch it)."""

import sys

from harness.cli import main

sys.exit(main())
