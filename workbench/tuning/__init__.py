"""Auto-tuning: name the device and the accuracy you can lose; an Optuna study over the plugins' declared
parameters finds the variant (:mod:`workbench.tuning.study`). One concept a file: the search space read
from Params (``space``), one trial (``trial``), where trials run (``workers``), the study (``study``).
"""
