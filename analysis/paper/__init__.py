"""The supplementary's Tables 1-2 recomputed, and the paper's backbones measured here.

May import: edgevit, analysis.cost, analysis.counters, analysis.latency, analysis.accuracy,
analysis.nas.
"""
