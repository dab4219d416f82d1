"""``python -m hubctl``: the same as the ``hubctl`` command."""

from hubctl.cli.app import main

if __name__ == "__main__":
    main()
