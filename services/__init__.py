"""The three services of the simulator: registry, itl and cdm_registry."""
