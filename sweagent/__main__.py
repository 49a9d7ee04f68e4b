import sys

from sweagent.run.cli import main

sys.exit(main())
