"""Scaling laws and regularisation (course day w3d4).

- :mod:`mlab.scaling.laws`: ``L(N) = a * N**-alpha + c`` fitted by least squares, bootstrap;
- :mod:`mlab.scaling.compute`: a GPT's parameter count and training FLOPs (``6 N D``);
- :mod:`mlab.scaling.batch`: learning-rate scaling rules, the critical batch size;
- :mod:`mlab.scaling.regularisation`: label smoothing, the early-stopping rule;
- :mod:`mlab.scaling.studies`, :mod:`mlab.scaling.runner`, :mod:`mlab.scaling.analyse`,
  :mod:`mlab.scaling.plots`: studies (grids of runs on w3d2's queue), fitted and drawn;
- :mod:`mlab.scaling.cli`: ``mlab study NAME``.
"""
