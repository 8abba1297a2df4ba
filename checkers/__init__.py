"""Pure analyses of histories. Imports nothing from harness/ or node/."""
