"""Training side of vdwgen: datasets (``training.data``) and models."""
