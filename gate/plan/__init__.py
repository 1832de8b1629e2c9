"""Static planning before any GPU time: hardware catalog, memory fit, change detection."""
