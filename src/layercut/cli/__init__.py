"""The `layercut` command: `main` wires up one module of subcommands per part of the toolkit."""
