import sys

from dreamset.cli import main

sys.exit(main())
