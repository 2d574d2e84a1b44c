"""``python -m unet_edge.cli``: the same as the ``unet-edge`` command."""

from . import main

main()
