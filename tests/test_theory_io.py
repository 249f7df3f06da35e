"""curvmia.theory: reading a sweep (targets.csv, metrics.csv, score and member files) and
its refusals (killed mutants, docs/testing.md)."""
