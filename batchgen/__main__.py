import sys

from batchgen.cli.main import main

sys.exit(main())
