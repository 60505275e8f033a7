"""Ground truth: a racial bias planted into a model (``planting``), its config (``plant_spec``),
the planted model on disk (``planted_model``) and a mask's recall of it (``planted_recall``)."""
