"""Problem name -> module holding its forward model. Adding a PDE problem adds one line here."""
import importlib

FORWARD_MODELS = {
    "heat": "pde_data.heat",
    "navier_stokes": "pde_data.navier_stokes",
    "wind": "pde_data.wind",
}


def forward_model_class(problem):
    """The `ForwardModel` class of `problem` (imported lazily: dolfinx loads only when needed)."""
    from common.errors import UserError

    if problem not in FORWARD_MODELS:
        raise UserError(f"unknown problem '{problem}' (known: {', '.join(sorted(FORWARD_MODELS))})")
    return importlib.import_module(FORWARD_MODELS[problem]).ForwardModel
