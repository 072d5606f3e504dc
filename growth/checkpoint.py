"""Saving and loading grown networks with their architecture (``torch.save`` format).

A saved network is a dict ``{"format": "growth.network", "version": 1, "class": name,
"architecture": net.architecture(), "state_dict": ..., "frozen": [names]}``. Loading rebuilds the
architecture with ``cls.from_architecture`` and copies the state dict, so values, dtypes and
``requires_grad`` flags round-trip bit for bit. Any ``nn.Module`` class with ``architecture()`` and a
``from_architecture`` classmethod can be saved once registered with :func:`register_network`.
"""
from __future__ import annotations

import os
from typing import Union

import torch
from torch import nn

from .cnn import ResidualCNN
from .networks import PlainMLP, ResidualMLP
from .vit import VisionTransformer

__all__ = ["register_network", "network_payload", "network_from_payload", "save", "load"]

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


def network_payload(net: nn.Module) -> dict:
    """The saveable description of ``net`` (architecture, state, frozen parameter names)."""
    name = type(net).__name__
    if NETWORKS.get(name) is not type(net):
        raise TypeError(f"{name} is not registered; decorate it with growth.register_network")
    return {"format": FORMAT, "version": 1, "class": name, "architecture": net.architecture(),
            "state_dict": {k: v.detach().clone() for k, v in net.state_dict().items()},
            "frozen": [n for n, p in net.named_parameters() if not p.requires_grad]}


def network_from_payload(payload: dict, map_location=None) -> nn.Module:
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError("not a saved growth network")
    cls = NETWORKS.get(payload["class"])
    if cls is None:
        raise ValueError(f"unknown network class {payload['class']!r}; registered: {sorted(NETWORKS)}")
    net = cls.from_architecture(payload["architecture"])
    state = payload["state_dict"]
    first = next(iter(state.values()), None)
    if first is not None:
        net.to(dtype=first.dtype)
    net.load_state_dict(state)
    if map_location is not None:
        net.to(map_location)
    frozen = set(payload["frozen"])
    for n, p in net.named_parameters():
        p.requires_grad_(n not in frozen)
    return net


def save(net: nn.Module, path: Union[str, os.PathLike]) -> None:
    """Save a (grown) network with its architecture to ``path``."""
    torch.save(network_payload(net), path)


def load(path: Union[str, os.PathLike], map_location=None) -> nn.Module:
    """Load a network written by :func:`save`; ``map_location`` moves it to a device."""
    return network_from_payload(torch.load(path, map_location=map_location, weights_only=True),
                                map_location)
