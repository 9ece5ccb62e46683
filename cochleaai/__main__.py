import sys

from cochleaai.cli import main

sys.exit(main())
