"""Measuring a trained model: reconstruction, validity, conditional accuracy (paper Tables 1-2)."""
