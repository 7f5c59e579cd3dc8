"""Data files shipped with hwsim: ``accuracy.csv``, the published quality of pruning
methods (read by :mod:`hwsim.accuracy`)."""
