"""Growth engine: growable residual networks and layer-insertion methods (torch and numpy only)."""
from .activations import ACTIVATIONS, Activation, get_activation
from .networks import (BLOCKS, DenseBlock, GrowableMLP, PlainMLP, ResidualBlock, ResidualMLP, TwoWeightBlock,
                       count_parameters, freeze, set_trainable, unfreeze)
from .checkpoint import load, register_network, save
from .trainer import Context, GrowResult, Strategy, carry_optimizer, evaluate_loss, grow
