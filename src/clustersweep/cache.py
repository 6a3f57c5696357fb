"""`python -m clustersweep.cache size|clear` (the logic: `clustersweep.app.cache`)."""

import sys

if __name__ == "__main__":
    from clustersweep.app.cache import main

    sys.exit(main())
