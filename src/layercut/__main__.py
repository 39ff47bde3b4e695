import sys

from layercut.cli import main

sys.exit(main())
