"""``ognet-video review``: a local web page over the runs of ``watch`` and ``score``, to look at each event's
snapshot, clip and score timeline and label it a false alarm or real; under ``watch --review-port``, also the
running cameras.

Modules: ``index`` (the events of the runs), ``timeline`` (scores around an event), ``feedback`` (the label
store ``calibrate --feedback`` reads), ``app`` (the web server, ``start_server``), ``live`` (``LiveBoard``, the
sink of the live part). Nothing is imported here, so the label store is usable without the web server's
dependencies.
"""
