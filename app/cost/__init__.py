"""GPU cost: a $/GPU-hour price table (a dated, overridable seed) and pure cost views."""
