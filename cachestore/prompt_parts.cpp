// placeholder: filled in by the cachestore work
