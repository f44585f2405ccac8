"""Fused kernels for the hot paths, written as plain torch code that ``torch.compile`` turns into
one loop per batch (C++ on CPU, Triton on CUDA); the same code run eagerly is their reference."""
