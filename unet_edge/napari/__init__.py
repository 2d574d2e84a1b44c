"""The napari plugin (extra ``[napari]``): a segmentation widget, a reader for our masks, a sample.

napari finds it through the ``napari.manifest`` entry point and this folder's
``napari.yaml``. Nothing here is imported by ``import unet_edge``, and this
file imports nothing: napari and Qt are imported only by :mod:`._widget`, when
napari opens the widget. :mod:`._segment` (the computation, with progress) and
:mod:`._reader` (mask TIFFs with their scale and provenance) need neither, so
they work, and are tested, without napari.
"""
