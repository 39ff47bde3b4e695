"""The model: where it comes from (sources), its layer stack (blocks), which layers to keep (layers),
loading it cut (load), saving it (checkpoint) and its size (size)."""
