"""Saving and loading grown networks with their architecture (``torch.save`` format).

A saved network is a dict ``{"format": "growth.network", "version": 1, "class": name,
"architecture": net.architecture(), "state_dict": ..., "frozen": [names]}``. Loading rebuilds the
architecture with ``cls.from_architecture`` and copies the state dict, so values, dtypes and
``requires_grad`` flags round-trip bit for bit. Any ``nn.Module`` class with ``architecture()`` and a
``from_architecture`` classmethod can be saved once registered with :func:`register_network`.

A wrapped user model (:func:`growth.wrap`) is saved the same way (class ``"Wrapped"``: its points,
state shapes and inserted blocks); its own class is code, which a ``weights_only=True`` file cannot
hold, so ``load(path, model=MyModel())`` takes a fresh instance of it to wrap. Files are read with
``weights_only=True`` (no code runs); a file that is not a saved network, is truncated or does not
fit the architecture it names is refused with a one-line ``ValueError``.
"""
from __future__ import annotations

import os
import pickle
from typing import Optional, Union

import torch
from torch import nn

from .cnn import ResidualCNN
from .networks import PlainMLP, ResidualMLP
from .vit import VisionTransformer
from .wrap import Wrapped

__all__ = ["register_network", "network_payload", "network_from_payload", "save", "load", "read"]

NETWORKS: dict[str, type] = {}
FORMAT = "growth.network"


def register_network(cls: type) -> type:
    """Class decorator: make ``cls`` loadable by :func:`load` (needs ``architecture``/``from_architecture``)."""
    if not (hasattr(cls, "architecture") and hasattr(cls, "from_architecture")):
        raise TypeError(f"{cls.__name__} needs architecture() and from_architecture() to be saved")
    NETWORKS[cls.__name__] = cls
    return cls


register_network(ResidualMLP)
register_network(PlainMLP)
register_network(ResidualCNN)
register_network(VisionTransformer)
register_network(Wrapped)


def network_payload(net: nn.Module) -> dict:
    """The saveable description of ``net`` (architecture, state, frozen parameter names)."""
    name = type(net).__name__
    if NETWORKS.get(name) is not type(net):
        raise TypeError(f"{name} is not registered; decorate it with growth.register_network")
    return {"format": FORMAT, "version": 1, "class": name, "architecture": net.architecture(),
            "state_dict": {k: v.detach().clone() for k, v in net.state_dict().items()},
            "frozen": [n for n, p in net.named_parameters() if not p.requires_grad]}


def network_from_payload(payload: dict, map_location=None, model: Optional[nn.Module] = None) -> nn.Module:
    """The network a payload describes; ``model``: a fresh instance of a wrapped model's class (only
    for a saved :class:`~growth.wrap.Wrapped`)."""
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError("not a saved growth network")
    missing = [k for k in ("class", "architecture", "state_dict", "frozen") if k not in payload]
    if missing:
        raise ValueError(f"a damaged saved growth network: no {', '.join(missing)}")
    cls = NETWORKS.get(payload["class"])
    if cls is None:
        raise ValueError(f"unknown network class {payload['class']!r}; registered: {sorted(NETWORKS)}")
    try:
        if cls is Wrapped:
            if model is None:
                raise ValueError(f"the file holds a wrapped {payload['architecture']['model']}: pass a fresh "
                                 "instance of it, growth.load(path, model=...)")
            net = cls.from_architecture(payload["architecture"], model)
        else:
            net = cls.from_architecture(payload["architecture"])
    except (KeyError, TypeError) as error:
        raise ValueError(f"a damaged saved {payload['class']}: its architecture has no valid {error}") from None
    state = payload["state_dict"]
    first = next((v for v in state.values() if v.is_floating_point()), None)  # the dtype of the weights
    if first is not None:
        net.to(dtype=first.dtype)
    _check_fits(net, state, payload["class"])
    net.load_state_dict(state)
    if map_location is not None:
        net.to(map_location)
    frozen = set(payload["frozen"])
    for n, p in net.named_parameters():
        p.requires_grad_(n not in frozen)
    return net


def _check_fits(net: nn.Module, state: dict, name: str) -> None:
    """ValueError (one line) unless ``state`` has exactly the network's entries with their shapes."""
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} ≠ {tuple(v.shape)}" for k, v in own.items()
              if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        parts = [f"{what}: {', '.join(items[:3])}{' ...' if len(items) > 3 else ''}"
                 for what, items in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)) if items]
        raise ValueError(f"the saved weights do not fit the {name} built from the saved architecture ({'; '.join(parts)})")


def read(path: Union[str, os.PathLike], map_location=None):
    """``torch.load(path, weights_only=True)``; a file that is not a readable torch file of tensors and
    plain data is refused with a one-line ``ValueError`` (a missing or unreadable file: the ``OSError``)."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise ValueError(f"{path}: not a saved growth network (it holds objects other than tensors and plain "
                         "data; refused unread, weights_only=True)") from None
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except (RuntimeError, EOFError, ValueError, OSError) as error:  # truncated or not a torch file
        reason = (str(error).splitlines() or [type(error).__name__])[0][:200]
        raise ValueError(f"{path}: not a readable saved network ({reason})") from None


def save(net: nn.Module, path: Union[str, os.PathLike]) -> None:
    """Save a (grown) network with its architecture to ``path``."""
    torch.save(network_payload(net), path)


def load(path: Union[str, os.PathLike], map_location=None, model: Optional[nn.Module] = None) -> nn.Module:
    """Load a network written by :func:`save`; ``map_location`` moves it to a device; ``model``: for a
    saved wrapped model, a fresh instance of its class (module docstring)."""
    return network_from_payload(read(path, map_location), map_location, model)
