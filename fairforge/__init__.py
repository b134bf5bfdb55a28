"""fairforge: fair deepfake detection that generalizes across datasets.

The shared core: the manifest contract, the taxonomy, config loading, atomic I/O, the CLI and the
tiny models of the embedded default. The stages are `fairforge.generate`, `fairforge.balance`,
`fairforge.train` and `fairforge.evaluate` (folders at the repository's top level).
"""

__version__ = "0.1.0"
