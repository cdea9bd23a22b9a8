"""Facts about GPUs every capability shares: MIG geometry, mig-parted layouts, device-plugin sharing."""
