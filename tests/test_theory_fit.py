"""curvmia.theory: the bound formulas, the AUROC fit and the crossover, against
transcriptions and hand-computed cases (killed mutants, docs/testing.md)."""
