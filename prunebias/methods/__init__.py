"""The methods: the registry (``registry``: one entry per family) and each family's learning,
controls and masks: Wanda neurons, heads, gradient attribution, race directions."""
