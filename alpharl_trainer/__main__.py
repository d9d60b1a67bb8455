import sys

from alpharl_trainer.cli import main

if __name__ == "__main__":  # vLLM's worker processes re-import the main module
    sys.exit(main())
