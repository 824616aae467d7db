"""The example cascades, shipped with the package as ``einsumcc.examples`` (data only)."""
