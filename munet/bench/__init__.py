"""Micro-benchmarks: ``munet bench NAME`` runs ``munet.bench.NAME.main()``."""
