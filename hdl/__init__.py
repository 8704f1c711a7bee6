"""pbitsim.hdl (installed from the hdl/ folder)."""
