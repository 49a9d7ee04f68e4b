"""`python -m covariate_shift_analysis ...`"""

import sys

from covariate_shift_analysis.cli import main

sys.exit(main())
