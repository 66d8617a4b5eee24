import sys

try:
    from pixring.cli.command import main
except KeyboardInterrupt:  # Ctrl-C while the command loads: the shell's convention, no traceback
    sys.exit(128 + 2)

sys.exit(main())
