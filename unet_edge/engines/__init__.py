"""What runs a graph: one adapter per engine behind one session interface.

- :mod:`~unet_edge.engines.options`: what a caller asks for (:class:`Provider`,
  :class:`ProviderOptions`).
- :mod:`~unet_edge.engines.session`: the interface every adapter implements,
  :class:`SessionInfo` (an open session and where it really runs) and
  :func:`run_batch`.
- :mod:`~unet_edge.engines.onnxruntime`, :mod:`~unet_edge.engines.openvino`:
  the adapters.
- :mod:`~unet_edge.engines.select`: availability, the ``auto`` order and
  :func:`open_session`, which picks the adapter.
- :mod:`~unet_edge.engines.diagnose`: library preloading, and why a
  provider does not come up, in words a user can act on.

Nothing is imported here, so that ``engines.options`` stays cheap to import
(the command line reads it before any engine is needed).
"""
