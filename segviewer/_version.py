"""The package version, in a leaf module (imported by the package and by whatever records
the version, e.g. the export manifest, without importing ``segviewer`` itself)."""

__version__ = "0.1.0"
