"""Architecture search: objectives, Pareto math, the NNI experiment runner and database
reader, the search report, and the tuner comparison. The only package that imports nni or optuna.

May import: edgevit, analysis.cost, analysis.counters, analysis.latency, analysis.accuracy.
"""
