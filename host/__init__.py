"""pbitsim.host (installed from the host/ folder)."""
