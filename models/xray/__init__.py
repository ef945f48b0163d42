"""The X-ray of a model: what every unit of every layer does at each step of one input.

- `limits.py`: the bounds of a request (torch-free, the API's schemas read them);
- `trace.py`: one forward pass through the cell equations with the same weights, keeping the gates;
- `saturation.py`: the fraction of steps each gate unit spends saturated (Karpathy et al. 2015, fig. 3);
- `features.py`: per-character features of a text (torch-free);
- `units.py`: units ranked by how well their activation tracks a feature (Pearson r).
"""
