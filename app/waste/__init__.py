"""GPU waste detection: how much of each GPU a pod holds goes unused (score 0..100, with reasons)."""
