"""Bundled demo data and model (installed as segviewer.resources)."""
