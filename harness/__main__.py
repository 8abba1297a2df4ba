"""`python -m harness`: the same as the `harness` command."""

from harness.cli import main

# guarded: a checker's worker processes (spawn) import this module again
if __name__ == "__main__":
    main()
