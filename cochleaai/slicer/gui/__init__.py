"""GUI helpers of the module shells: jobs, panels, dependencies, parameters, module bases."""
