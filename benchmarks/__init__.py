"""Reproducible benchmarks for tcvpc: ``python -m benchmarks [--quick] [b1 b2 b3 b4]``.

They measure the installed tcvpc: install this checkout first (``pip install -e '.[dev,bench]'``).
"""
