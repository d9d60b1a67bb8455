import sys

from alpharl_trainer.cli import main

sys.exit(main())
