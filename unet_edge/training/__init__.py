"""The PyTorch half of unet-edge: the network, training and export.

Needs the ``[train]`` extra (torch). Nothing in the runtime imports this
package, so ``import unet_edge`` stays torch-free.
"""
