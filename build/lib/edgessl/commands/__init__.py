"""Sub-commands of the `edgessl` CLI, one module each."""
