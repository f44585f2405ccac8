"""The kernels behind the methods: auto's native numba kernels (the default CPU path), the closed
forms' adjugate formulas, and the inductor plumbing of the compiled learned path."""
