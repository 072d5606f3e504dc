"""Make a user's ``nn.Module`` growable at named points of its residual stream: ``growth.wrap``.

``net = growth.wrap(model, locations=["layer1", "layer2"], example=x[:1])`` names submodules whose
*outputs* lie on the residual stream (e.g. the ``nn.Sequential`` stages of a ResNet); blocks are
inserted after them by forward hooks, so ``model``'s code is untouched. Point i with k_i inserted
blocks has k_i + 1 locations: the module's output and the state after each inserted block; the
locations are numbered in the order of ``locations`` (which must be the order of the forward pass,
checked on ``example``), and each named module must run exactly once per forward.

The insertion operator of a point follows the shape of its state on ``example``: (n,) dense,
(C, H, W) convolution with ``kernel_size`` (odd, 'same'), (T, D) token-wise. The inserted blocks use
``activation`` (default ``"td"``: σ(0) = σ'(0) = 0 ≠ σ''(0), what the topological derivative needs).
``n_blocks`` counts the inserted blocks only. :func:`growth.save` writes the wrapping (points, state
shapes, kernel, σ), the inserted blocks at their locations and every weight; the user's class itself
is not in the file (it is code, and files are read with ``weights_only=True``), so
``growth.load(path, model=MyModel())`` takes a fresh instance of it and wraps that.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from .activations import Activation, get_activation
from .growable import Location, LocationHook, like
from .operators import ConvOperator, DenseOperator, InsertionOperator, TokenOperator

__all__ = ["Wrapped", "wrap", "operator_for"]


def operator_for(shape: tuple, kernel_size: int = 3) -> InsertionOperator:
    """The insertion operator of a per-sample state shape: (n,), (C, H, W) or (T, D)."""
    if len(shape) == 1:
        return DenseOperator(shape[0])
    if len(shape) == 2:
        return TokenOperator(*shape)
    if len(shape) == 3:
        return ConvOperator(*shape, kernel_size=kernel_size)
    raise ValueError(f"no insertion operator for states of shape {tuple(shape)} (use (n,), (C, H, W) or (T, D))")


class Wrapped(nn.Module):
    """``model`` with insertion points after the submodules ``points`` (module docstring)."""

    block_kind = "residual"

    def __init__(self, model: nn.Module, points: Sequence[str], example: Optional[torch.Tensor], kernel_size: int = 3,
                 activation: str = "td", shapes: Optional[Sequence[Sequence[int]]] = None):
        super().__init__()
        if (example is None) == (shapes is None):
            raise ValueError("give either an example input (to probe the state shapes) or the shapes")
        if isinstance(model, Wrapped) or any(isinstance(hook, _PointHook) for module in model.modules()
                                             for hook in module._forward_hooks.values()):
            raise ValueError("the model is already wrapped (name all its locations in one growth.wrap; "
                             "to load or resume, pass a fresh instance of the model)")
        if not points:
            raise ValueError("name at least one location (a submodule whose output is on the residual stream)")
        if len(set(points)) != len(points):
            raise ValueError(f"locations repeat a name: {list(points)}")
        modules = dict(model.named_modules())
        unknown = [p for p in points if p not in modules or not p]
        if unknown:
            raise ValueError(f"model has no submodule {unknown[0]!r}; its submodules are, e.g., "
                             f"{[n for n in modules if n][:8]}")
        self.model, self.points, self.kernel_size = model, list(points), kernel_size
        self.activation_name = activation
        self.activation: Activation = get_activation(activation)
        self.inserted = nn.ModuleList(nn.ModuleList() for _ in self.points)
        self._hook: Optional[LocationHook] = None
        self._calls: list[int] = []
        for i, name in enumerate(self.points):
            modules[name].register_forward_hook(_PointHook(self, i))
        if shapes is None:
            self.operators = self._probe(example, kernel_size)
        else:
            if len(shapes) != len(self.points):
                raise ValueError(f"{len(shapes)} state shapes for {len(self.points)} locations")
            self.operators = [operator_for(tuple(shape), kernel_size) for shape in shapes]

    def _at_point(self, point: int, h: torch.Tensor) -> torch.Tensor:
        """The stream after point ``point``: its inserted blocks, with the location hook between them."""
        self._calls.append(point)
        offset = self._offset(point)
        if self._hook is not None:
            h = self._hook(offset, h)
        for j, block in enumerate(self.inserted[point], start=1):
            h = block(h)
            if self._hook is not None:
                h = self._hook(offset + j, h)
        return h

    def _probe(self, example: torch.Tensor, kernel_size: int) -> list[InsertionOperator]:
        """The state shape at every point on ``example``, and the check that each point runs once, in order."""
        shapes: dict[int, tuple] = {}

        def record(location, h):
            shapes[location] = tuple(h.shape[1:])
            return h

        training = self.model.training
        self.model.eval()  # no side effects of the probe (e.g. BatchNorm running statistics)
        try:
            with torch.no_grad():
                self.forward(example, location_hook=record)
        finally:
            self.model.train(training)
        if self._calls != list(range(len(self.points))):
            order = [self.points[i] for i in self._calls]
            raise ValueError(f"the forward pass runs the locations as {order}; each must run exactly once, "
                             f"in the order given ({self.points})")
        return [operator_for(shapes[self._offset(i)], kernel_size) for i in range(len(self.points))]

    def _offset(self, point: int) -> int:
        return sum(len(blocks) + 1 for blocks in self.inserted[:point])

    def _split(self, location: int) -> tuple[int, int]:
        """(point, position within the point) of a location index."""
        if isinstance(location, bool) or not isinstance(location, int) or location < 0:
            raise IndexError(f"location {location!r} out of range")
        for point, blocks in enumerate(self.inserted):
            if location <= len(blocks):
                return point, location
            location -= len(blocks) + 1
        raise IndexError(f"location out of range: this network has locations 0..{len(self.locations()) - 1}")

    # -- the growable protocol ----------------------------------------------------------------------
    @property
    def n_blocks(self) -> int:
        return sum(len(blocks) for blocks in self.inserted)

    def locations(self) -> list[Location]:
        out = []
        for point, (name, blocks) in enumerate(zip(self.points, self.inserted)):
            for j in range(len(blocks) + 1):
                out.append(Location(len(out), name if j == 0 else f"{name}+{j}", self.operators[point]))
        return out

    def forward(self, x: torch.Tensor, location_hook: Optional[LocationHook] = None) -> torch.Tensor:
        self._hook, self._calls = location_hook, []
        try:
            return self.model(x)
        finally:
            self._hook = None

    def insert_block(self, location: int, block: nn.Module) -> nn.Module:
        """Put ``block`` right after ``location`` (it acts on that state)."""
        point, j = self._split(location)
        ref = self.reference_parameter()
        probe = next(block.parameters())
        if probe.dtype != ref.dtype or probe.device != ref.device:
            raise ValueError(f"block has dtype {probe.dtype} on {probe.device}, the network {ref.dtype} on "
                             f"{ref.device}; build it with dtype= and device=")
        self.inserted[point].insert(j, block)
        return block

    def remove_block(self, location: int) -> nn.Module:
        """Remove and return the inserted block right after ``location``."""
        point, j = self._split(location)
        if j >= len(self.inserted[point]):
            raise IndexError(f"no inserted block after location {location}")
        block = self.inserted[point][j]
        del self.inserted[point][j]
        return block

    def reference_parameter(self) -> torch.Tensor:
        return next(self.model.parameters())

    # -- saving (growth.save / growth.load) ---------------------------------------------------------
    def architecture(self) -> dict:
        """The wrapping and the inserted blocks per point, as plain JSON data (the user's model is
        named by its class, not described: :meth:`from_architecture` takes a fresh instance)."""
        return {"model": class_name(self.model), "points": list(self.points),
                "shapes": [list(op.shape) for op in self.operators], "kernel_size": self.kernel_size,
                "activation": self.activation_name,
                "inserted": [[_spec(block) for block in blocks] for blocks in self.inserted]}

    @classmethod
    def from_architecture(cls, arch: dict, model: nn.Module) -> "Wrapped":
        """``model`` (a fresh instance of the saved model's class) wrapped as ``arch`` says, with the
        inserted blocks at their locations (weights: ``load_state_dict`` afterwards)."""
        if class_name(model) != arch["model"]:
            raise ValueError(f"the file holds a wrapped {arch['model']}, the given model is a {class_name(model)}")
        net = cls(model, arch["points"], None, arch["kernel_size"], arch["activation"], shapes=arch["shapes"])
        if len(arch["inserted"]) != len(net.points):
            raise ValueError(f"{len(arch['inserted'])} lists of inserted blocks for {len(net.points)} locations")
        for point, specs in enumerate(arch["inserted"]):
            for spec in specs:
                net.inserted[point].append(_block(net.operators[point], spec, like(net)))
        return net


def class_name(model: nn.Module) -> str:
    """``module.QualifiedName`` of the model's class."""
    return f"{type(model).__module__}.{type(model).__qualname__}"


_BUILDERS = {"residual": "block", "conv_residual": "block", "two_weight": "two_weight_block",
             "conv_two_weight": "two_weight_block"}


def _spec(block: nn.Module) -> dict:
    """The saveable description of an inserted block (an operator's residual or two-weight block)."""
    kind = getattr(block, "kind", None)
    if kind not in _BUILDERS:
        raise TypeError(f"cannot save an inserted {type(block).__name__}: growth.save rebuilds the insertion "
                        f"operators' blocks ({', '.join(_BUILDERS)})")
    return block.spec()


def _block(operator: InsertionOperator, spec: dict, where: dict) -> nn.Module:
    """The block of ``spec`` built by ``operator`` (zero weights; the state dict fills them)."""
    builder = _BUILDERS.get(spec.get("kind"))
    if builder is None:
        raise ValueError(f"unknown inserted block kind {spec.get('kind')!r}")
    block = getattr(operator, builder)(spec["activation"], **where)
    if block.kind != spec["kind"]:
        raise ValueError(f"a saved {spec['kind']} block does not fit the {operator} location")
    return block


class _PointHook:
    """Forward hook of point ``point`` (an object, not a closure, so that ``copy.deepcopy`` of the
    wrapped model hooks the copy's own blocks)."""

    def __init__(self, owner: Wrapped, point: int):
        self.owner, self.point = owner, point

    def __call__(self, _module, _inputs, output):
        return self.owner._at_point(self.point, output)


def wrap(model: nn.Module, locations: Sequence[str], example: torch.Tensor, *, kernel_size: int = 3,
         activation: str = "td") -> Wrapped:
    """``model`` made growable after the submodules named in ``locations`` (module docstring);
    ``example`` is one input batch (a single sample suffices) on the model's device and dtype."""
    return Wrapped(model, locations, example, kernel_size, activation)
