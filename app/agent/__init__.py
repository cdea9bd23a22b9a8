"""Node agent: GPU and topology discovery (NVML, or an `nvidia-smi topo -m` text) -> node annotation."""
