import sys

from gpt2kit.cli.main import main

sys.exit(main())
