import sys

from lab._cli import main

sys.exit(main())
