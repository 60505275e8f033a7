"""Statistics, pure: bias metrics, name-level inference, transfer, power and design warnings."""
