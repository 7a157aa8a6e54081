"""Core: pure numpy (no Qt, no TensorFlow). Types, layouts, masks, colours, overlays, metrics."""
