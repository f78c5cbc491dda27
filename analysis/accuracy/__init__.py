"""The accuracy axis: datasets, zero-cost proxies, short training, the methods that turn a
config into a score (`methods`) and the rank statistics that say how far to trust them.

May import: edgevit, analysis.cost.
"""
