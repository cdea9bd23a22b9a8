"""GPU cost: a $/GPU-hour price table (dated seed from the shared reference, overridable) and pure cost views."""
