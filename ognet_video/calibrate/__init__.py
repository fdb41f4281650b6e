"""Calibration: the decision learnt from normal footage, never from test labels.

``calibration`` (the threshold from a target false-alarm rate: block maxima, Gumbel fit, bootstrap margin),
``postprocess`` (the calibration fit: crowd correction, normalisation, the object cue's units, the threshold),
``heldout`` (the raw scores of the calibration footage, kept in the checkpoint), ``feedback`` (the events an
operator labelled, gathered for ``calibrate --feedback``), ``recalibrate`` (the ``calibrate`` command: refit a
trained model on more normal footage and on those events).
"""
