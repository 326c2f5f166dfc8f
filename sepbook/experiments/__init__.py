"""Layer 4, experiments: the one training loop and its processes, the one claims rule, and row reports."""
