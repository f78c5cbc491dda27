"""The analysis suite around the `edgevit` model, one subpackage per question, each importing
only the ones below it (a test enforces this):

  cost       exact MACs / params per op, batched over configs; features; LGL theory; the space
  counters   what fvcore, ptflops and torch's FlopCounterMode print, and why (reconcile)
  latency    measured latency, the store, devices' CSVs, predictors and calibration
  accuracy   datasets, proxies, training, accuracy methods, rank statistics
  nas        objectives, Pareto math, NNI experiments and reports, tuner comparison
  paper      the supplementary's tables and backbones
  cli        the `edgevit` command
"""
