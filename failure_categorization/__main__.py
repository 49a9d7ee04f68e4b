import sys

from failure_categorization.cli import main

sys.exit(main())
