"""pbitsim.firmware (installed from the firmware/ folder)."""
