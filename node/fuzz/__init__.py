"""`pocnet fuzz`: protocol-level fuzzing as a product (targets, engines, corpora, crash files)."""
