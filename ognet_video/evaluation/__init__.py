"""Evaluation: how good a model is, with labels and without.

``evaluate`` (the ``eval`` command: a model on a labelled dataset), ``metrics`` (AUC and EER, operator metrics:
intervals hit, false alarms, delay), ``localisation`` (the drawn box against pixel masks: pixel-level AUC, RBDC and
TBDC), ``validation`` (the label-free check: synthetic anomalies made from held-out normal footage), ``report``
(ROC curves and score timelines).
"""
