"""Growth engine: growable residual networks and layer-insertion methods (torch and numpy only)."""
from .activations import ACTIVATIONS, Activation, get_activation
from .blocks import BLOCKS, ConvResidualBlock, ConvTwoWeightBlock, DenseBlock, ResidualBlock, TwoWeightBlock
from .growable import Growable, Location, Stack, check_growable, insert_residual
from .operators import ConvOperator, DenseOperator, InsertionOperator, TokenOperator
from .stream import BlockStream
from .networks import GrowableMLP, PlainMLP, ResidualMLP, count_parameters, freeze, set_trainable, unfreeze
from .cnn import ResidualCNN
from .vit import TransformerBlock, VisionTransformer
from .wrap import Wrapped, wrap
from .checkpoint import load, register_network, save
from .proposal import Proposal, apply_proposal, states_and_adjoints
from .topological import line_search, q_blocks, topological_derivative
from .sensitivity import sensitivity_scores, sensitivity_scores_reference
from .trainer import Context, GrowResult, Strategy, carry_optimizer, evaluate_loss, grow
from .strategies import (FixedBaseline, ForwardThinking, Net2DeeperNet, RandomInsertion, SensitivityStrategy,
                         TopologicalStrategy)
from . import regularizers
from .layerwise import LayerwiseStrategy
from .srl import ResidualSum, SRLResult, sequential_residual_learning
from .transfer import FrozenBase, LowRankAdapted, add_low_rank_adapters, freeze_base
