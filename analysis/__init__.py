"""What the trained networks learned: saliency, generalized input signals, acoustics, sanity checks.

Imports raylab; raylab never imports this package.
"""
