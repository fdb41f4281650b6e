"""Frames in, scores and decisions out, as a stream: what ``eval``, ``watch``, ``score`` and ``load`` share.

``scoring`` (``FrameScorer``: frames -> raw patch and frame scores, chunk by chunk; ``StreamScorer``: those scores
handed to one ``decide.Decider`` per stream), ``prefetch`` (a stream's next batches prepared in their own thread
while the run loop scores the current one), ``engine`` (the run loop: streams, a source and its sinks, through one
model, per-stage timings), ``signals`` (Ctrl-C and SIGTERM: a request to stop after the current batch), ``values``
(what a stream's sinks are given: ``StreamInfo`` at open, ``Counters`` on every batch).
"""
