"""Official benchmark metrics: BFCL (AST and multi-turn), API-Bank, QA exact match and F1."""
