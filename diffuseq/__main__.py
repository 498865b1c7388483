import sys

from diffuseq.cli import main

sys.exit(main())
