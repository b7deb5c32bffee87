"""`python -m interlink.cli`: the `interlink` command."""

from interlink.cli import main

main()
