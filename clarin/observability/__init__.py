"""Operations: Prometheus metrics (``metrics``), structured logs (``logging``) and the ``/metrics`` route."""
