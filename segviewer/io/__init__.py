"""File formats to and from core types (nibabel, pydicom, pynrrd, Pillow, tifffile); atomic writers."""
