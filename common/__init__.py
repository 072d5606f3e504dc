"""Infrastructure shared by ``pde_data`` and ``problems``: the user-error type, the command-line
parser helper and the logging setup (no numerical code, no torch, no dolfinx)."""
