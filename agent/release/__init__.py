"""Safe change: policy replay on history (and, as they come, shadow rules and canaries)."""
