import sys

from wsfleet.cli import main

sys.exit(main())
