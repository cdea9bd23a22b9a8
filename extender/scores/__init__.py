"""Score parts, one file each (like kube-scheduler's plugins): topology, resource, balance. Each returns
floats 0..100 aligned with the rows it is given; the weighted sum and the 0..10 mapping live in core.py."""
