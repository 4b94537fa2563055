import sys

from seqvpr.cli import main

sys.exit(main())
