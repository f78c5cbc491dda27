"""The exact cost of an EdgeViT: MACs, parameters and elementwise work per op (`ops`), batched
over arrays of configs (`batched`), the latency predictors' cost features (`features`), the
big-O of the paper against the exact count (`lgl_theory`), and the search space (`search_space`).

May import: edgevit.
"""
