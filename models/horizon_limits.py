"""The memory horizon's bounds, torch-free: `models/horizon.py` checks them, the API's query schema
(app/schemas/analysis.py) reads them without importing torch.

Each request is one (windows, max_lag + 1) forward and backward pass: at the maximum, 256 x 257
positions, about what a training step of a large text config costs.
"""

MAX_LAG = 256
MAX_WINDOWS = 256
DEFAULT_LAG = 64
DEFAULT_WINDOWS = 64
