"""Static planning before any GPU time: hardware catalog, kernels, memory fit (torch-free)."""
