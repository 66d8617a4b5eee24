import sys

from pixring.cli import main

sys.exit(main())
