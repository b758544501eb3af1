"""Micro-benchmarks: ``python -m munet.bench NAME`` runs ``munet.bench.NAME.main()``."""
