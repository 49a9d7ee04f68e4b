import sys

from oec.evaluation.cli import main

sys.exit(main())
