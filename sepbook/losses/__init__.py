"""Training losses, kept apart from the models they train (each module names its chapter).

- :mod:`sepbook.losses.masking`: Open-Unmix's magnitude loss (Foundations).
- :mod:`sepbook.losses.adversarial`: the supervised, Wasserstein, gradient-penalty and additive
  losses of adversarial semi-supervised separation.
- :mod:`sepbook.losses.clustering`: ChimeraNet's deep-clustering and mask-inference losses
  (transfer learning).
"""
