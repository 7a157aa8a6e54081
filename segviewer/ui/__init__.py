"""The Qt window (PySide6, pyqtgraph, superqt): the only package that imports Qt."""
