"""The processes `rnnlab serve` runs: the worker's supervisor and the thread budgets."""
